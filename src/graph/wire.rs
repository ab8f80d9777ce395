//! TEMPORARY STUB (not committed): replaced by the helper's encoding.
use std::sync::Arc;

use super::TaskGraph;
use crate::catalog::ObjectStores;
use crate::error::{QuarryError, Result};

pub const WIRE_VERSION: u32 = 1;

pub fn encode(_graph: &TaskGraph) -> Result<Vec<u8>> {
    Err(QuarryError::exec("stub"))
}

pub fn decode(_bytes: &[u8], _stores: &Arc<ObjectStores>) -> Result<TaskGraph> {
    Err(QuarryError::exec("stub"))
}
