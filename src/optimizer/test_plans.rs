//! Small plans for the unit tests of the optimizer's rules.

use std::sync::Arc;

use arrow::array::Int64Array;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;

use crate::plan::{Expr, LogicalPlan};

/// `rows` rows (0, 1, …) of nullable Int64 columns `names`.
pub fn values(names: &[&str], rows: i64) -> LogicalPlan {
    let schema = Arc::new(Schema::new(
        names
            .iter()
            .map(|n| Field::new(*n, DataType::Int64, true))
            .collect::<Vec<_>>(),
    ));
    let columns = names
        .iter()
        .map(|_| Arc::new(Int64Array::from_iter_values(0..rows)) as _)
        .collect();
    LogicalPlan::Values {
        schema: schema.clone(),
        batches: vec![RecordBatch::try_new(schema, columns).unwrap()],
    }
}

pub fn col(i: usize) -> Expr {
    Expr::Column(i)
}
