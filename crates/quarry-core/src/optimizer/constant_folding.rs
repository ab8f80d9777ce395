//! Constant folding: sub-expressions that read no column are computed once at
//! planning time (`date '1998-12-01' - interval '90' day` becomes a date), so
//! that later rules and the scan's statistics see plain literals.

use std::sync::Arc;

use arrow::datatypes::Schema;
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion_common::ScalarValue;

use super::map_inputs;
use crate::error::Result;
use crate::exec::expr::evaluate_array;
use crate::plan::{Expr, LogicalPlan};

/// Folds every constant sub-expression of `e`. An expression whose folding
/// fails (say 1/0) is left as it is, to fail when the query runs.
pub fn fold_expr(e: Expr) -> Result<Expr> {
    e.transform_up(&mut |x| {
        if matches!(x, Expr::Literal(_)) || !x.is_constant() {
            return Ok(x);
        }
        Ok(evaluate_constant(&x).map(Expr::Literal).unwrap_or(x))
    })
}

fn evaluate_constant(e: &Expr) -> Option<ScalarValue> {
    let opts = RecordBatchOptions::new().with_row_count(Some(1));
    let batch = RecordBatch::try_new_with_options(Arc::new(Schema::empty()), vec![], &opts).ok()?;
    let array = evaluate_array(e, &batch).ok()?;
    ScalarValue::try_from_array(&array, 0).ok()
}

pub fn fold_plan(plan: LogicalPlan) -> Result<LogicalPlan> {
    let plan = map_inputs(plan, &mut fold_plan)?;
    let fold_all = |v: Vec<Expr>| v.into_iter().map(fold_expr).collect::<Result<Vec<_>>>();
    Ok(match plan {
        LogicalPlan::Filter { input, predicate } => LogicalPlan::Filter {
            input,
            predicate: fold_expr(predicate)?,
        },
        LogicalPlan::Project {
            input,
            exprs,
            schema,
        } => LogicalPlan::Project {
            input,
            exprs: fold_all(exprs)?,
            schema,
        },
        LogicalPlan::Aggregate {
            input,
            group,
            aggs,
            schema,
        } => LogicalPlan::Aggregate {
            input,
            group: fold_all(group)?,
            aggs: aggs
                .into_iter()
                .map(|mut a| {
                    a.arg = a.arg.map(fold_expr).transpose()?;
                    Ok(a)
                })
                .collect::<Result<_>>()?,
            schema,
        },
        LogicalPlan::Join {
            left,
            right,
            kind,
            on,
            filter,
            schema,
        } => LogicalPlan::Join {
            left,
            right,
            kind,
            on: on
                .into_iter()
                .map(|(l, r)| Ok((fold_expr(l)?, fold_expr(r)?)))
                .collect::<Result<_>>()?,
            filter: filter.map(fold_expr).transpose()?,
            schema,
        },
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::BinaryOp;
    use arrow::datatypes::IntervalMonthDayNano;

    #[test]
    fn date_minus_interval_folds_to_a_date() {
        let e = Expr::binary(
            BinaryOp::Minus,
            Expr::Literal(ScalarValue::Date32(Some(10561))), // 1998-12-01
            Expr::Literal(ScalarValue::IntervalMonthDayNano(Some(
                IntervalMonthDayNano::new(0, 90, 0),
            ))),
        );
        assert_eq!(
            fold_expr(e).unwrap(),
            Expr::Literal(ScalarValue::Date32(Some(10471)))
        );
    }

    #[test]
    fn division_by_zero_is_left_for_run_time() {
        let e = Expr::binary(
            BinaryOp::Divide,
            Expr::Literal(ScalarValue::Int64(Some(1))),
            Expr::Literal(ScalarValue::Int64(Some(0))),
        );
        assert!(matches!(fold_expr(e).unwrap(), Expr::Binary { .. }));
    }
}
