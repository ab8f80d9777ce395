//! WHERE's conditions over a LATERAL item reach the joins before it. The
//! comma items before a LATERAL one are a cross join until WHERE's
//! conditions join them (`FROM a, b, generate_series(1, a.n) AS g(x)
//! WHERE a.k = b.k`), and the lateral join puts something between that
//! cross join and WHERE's filter, which join ordering does not look
//! through:
//! - a series made from the rows (`LogicalPlan::Series`): the conditions
//!   that read only those rows move below it. Sound because the series
//!   repeats each row (or drops it, when its series is empty) without
//!   changing it, so such a condition keeps or drops all its copies alike;
//!   a conjunct that can raise an error by itself stays above, where it
//!   sees only the rows the series keeps.
//! - the projection that drops the columns a general (unnested) lateral
//!   join matched on: a filter over a projection of plain columns over an
//!   inner join moves below the projection, where it reads the same
//!   values.
//!
//! Join ordering then finds the conditions, and the series or the
//! lateral query is made from the joined rows rather than from the cross
//! product.

use super::map_inputs;
use super::outer_join_filters::{add_filter, may_fail_on_other_rows};
use crate::error::Result;
use crate::plan::{Expr, JoinKind, LogicalPlan};

pub fn push_filters_below_lateral_joins(plan: LogicalPlan) -> Result<LogicalPlan> {
    let plan = map_inputs(plan, &mut push_filters_below_lateral_joins)?;
    let LogicalPlan::Filter { input, predicate } = plan else {
        return Ok(plan);
    };
    let (rows, args, inclusive, schema) = match *input {
        LogicalPlan::Series {
            input,
            args,
            inclusive,
            schema,
        } => (input, args, inclusive, schema),
        LogicalPlan::Project {
            input: below,
            exprs,
            schema,
        } if matches!(
            *below,
            LogicalPlan::Join {
                kind: JoinKind::Inner,
                ..
            }
        ) && exprs.iter().all(|e| matches!(e, Expr::Column(_))) =>
        {
            let project = LogicalPlan::Project {
                input: below,
                exprs,
                schema,
            };
            return Ok(add_filter(project, predicate));
        }
        other => {
            return Ok(LogicalPlan::Filter {
                input: Box::new(other),
                predicate,
            })
        }
    };
    let width = rows.schema().fields().len();
    let (moved, kept): (Vec<Expr>, Vec<Expr>) =
        predicate.split_conjunction().into_iter().partition(|c| {
            let mut cols = Vec::new();
            c.columns(&mut cols);
            cols.iter().all(|&i| i < width) && !may_fail_on_other_rows(c)
        });
    let rows = match moved.is_empty() {
        true => *rows,
        // (the rows may be a series in turn)
        false => push_filters_below_lateral_joins(add_filter(*rows, Expr::and_all(moved)))?,
    };
    let series = LogicalPlan::Series {
        input: Box::new(rows),
        args,
        inclusive,
        schema,
    };
    Ok(match kept.is_empty() {
        true => series,
        false => LogicalPlan::Filter {
            input: Box::new(series),
            predicate: Expr::and_all(kept),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::BinaryOp;
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion_common::ScalarValue;
    use std::sync::Arc;

    fn values(names: &[&str]) -> LogicalPlan {
        let fields: Vec<Field> = names
            .iter()
            .map(|n| Field::new(*n, DataType::Int64, true))
            .collect();
        let schema = Arc::new(Schema::new(fields));
        LogicalPlan::Values {
            batches: vec![arrow::record_batch::RecordBatch::new_empty(schema.clone())],
            schema,
        }
    }

    fn eq(a: Expr, b: Expr) -> Expr {
        Expr::binary(BinaryOp::Eq, a, b)
    }

    #[test]
    fn conditions_on_the_rows_go_below_the_series_and_the_others_stay() {
        // a(k, n), b(k); series(1, n) over a × b; WHERE a.k = b.k AND x = 2
        let rows = LogicalPlan::join(
            values(&["k", "n"]),
            values(&["k"]),
            JoinKind::Inner,
            vec![],
            None,
        );
        let one = Expr::Literal(ScalarValue::Int64(Some(1)));
        let series = LogicalPlan::series(rows, vec![one, Expr::Column(1)], true, "x");
        let two = Expr::Literal(ScalarValue::Int64(Some(2)));
        let plan = LogicalPlan::Filter {
            input: Box::new(series),
            predicate: Expr::and_all(vec![
                eq(Expr::Column(0), Expr::Column(2)),
                eq(Expr::Column(3), two.clone()),
            ]),
        };
        let LogicalPlan::Filter { input, predicate } =
            push_filters_below_lateral_joins(plan).unwrap()
        else {
            panic!("the condition on the series' value stays above it");
        };
        assert_eq!(predicate, eq(Expr::Column(3), two));
        let LogicalPlan::Series { input: rows, .. } = *input else {
            panic!("a series under the filter");
        };
        let LogicalPlan::Filter { predicate, input } = *rows else {
            panic!("the join condition went below the series");
        };
        assert_eq!(predicate, eq(Expr::Column(0), Expr::Column(2)));
        assert!(matches!(*input, LogicalPlan::Join { .. }));
    }

    #[test]
    fn a_filter_over_a_projection_of_columns_of_an_inner_join_goes_below_it() {
        let join = LogicalPlan::join(
            values(&["a"]),
            values(&["b", "c"]),
            JoinKind::Inner,
            vec![],
            None,
        );
        let names = ["a".to_string(), "b".to_string()];
        let project =
            LogicalPlan::project(join, vec![Expr::Column(0), Expr::Column(1)], &names).unwrap();
        let plan = LogicalPlan::Filter {
            input: Box::new(project),
            predicate: eq(Expr::Column(0), Expr::Column(1)),
        };
        let LogicalPlan::Project { input, .. } = push_filters_below_lateral_joins(plan).unwrap()
        else {
            panic!("the projection on top");
        };
        let LogicalPlan::Filter { input, predicate } = *input else {
            panic!("the filter below the projection");
        };
        assert_eq!(predicate, eq(Expr::Column(0), Expr::Column(1)));
        assert!(matches!(*input, LogicalPlan::Join { .. }));
    }
}
