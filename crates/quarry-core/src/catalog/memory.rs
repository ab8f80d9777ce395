//! In-memory tables (CREATE TABLE, CREATE TABLE … AS SELECT, INSERT).

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use serde::{Deserialize, Serialize};

use super::{ScanDescriptor, ScanPartition, TableProvider, TableStats};
use crate::error::Result;
use crate::plan::Expr;

#[derive(Debug)]
pub struct MemTable {
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
}

impl MemTable {
    pub fn new(schema: SchemaRef, batches: Vec<RecordBatch>) -> Self {
        MemTable { schema, batches }
    }

    pub fn batches(&self) -> &[RecordBatch] {
        &self.batches
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemPartition {
    #[serde(with = "crate::plan::arrow_serde::batches")]
    batches: Vec<RecordBatch>,
}

impl ScanPartition for MemPartition {
    fn read(
        &self,
        sink: &mut dyn FnMut(RecordBatch) -> Result<()>,
        _fetched: &std::sync::atomic::AtomicU64,
    ) -> Result<()> {
        for b in &self.batches {
            sink(b.clone())?;
        }
        Ok(())
    }

    fn describe(&self) -> Result<ScanDescriptor> {
        Ok(ScanDescriptor::Memory(self.clone()))
    }
}

impl TableProvider for MemTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn statistics(&self) -> TableStats {
        TableStats {
            num_rows: Some(self.batches.iter().map(|b| b.num_rows()).sum()),
        }
    }

    fn kind(&self) -> &'static str {
        "memory"
    }

    fn as_memory(&self) -> Option<&MemTable> {
        Some(self)
    }

    fn partitions(
        &self,
        projection: &[usize],
        _filters: &[Expr],
    ) -> Result<Vec<Arc<dyn ScanPartition>>> {
        let projected = self
            .batches
            .iter()
            .filter(|b| b.num_rows() > 0)
            .map(|b| Ok(b.project(projection)?))
            .collect::<Result<Vec<_>>>()?;
        if projected.is_empty() {
            return Ok(vec![]);
        }
        Ok(projected
            .into_iter()
            .map(|b| Arc::new(MemPartition { batches: vec![b] }) as Arc<dyn ScanPartition>)
            .collect())
    }
}
