//! Semi and anti joins go below the inner joins and projections under
//! them, down to the input that holds their keys (not below a filter, which
//! is cheaper and should thin the rows first): filtering orders by
//! `o_orderkey IN (…)` before they meet lineitem, not after (TPC-H Q18),
//! keeps the rows that the inner joins and their exchanges carry few.
//!
//! Sound because a semi (anti) join keeps or drops each row of its input by
//! the row's own keys: an inner join above it passes on exactly the rows it
//! would have passed on before, and drops the rest.

use super::map_inputs;
use crate::error::Result;
use crate::plan::{Expr, JoinKind, LogicalPlan};

pub fn push_down_semi_joins(plan: LogicalPlan) -> Result<LogicalPlan> {
    let plan = map_inputs(plan, &mut push_down_semi_joins)?;
    Ok(match plan {
        LogicalPlan::Join {
            left,
            right,
            kind: kind @ (JoinKind::Semi | JoinKind::Anti),
            on,
            filter: None,
            ..
        } => place(*left, *right, kind, on),
        other => other,
    })
}

/// The semi (anti) join of `input` with `sub` on `on` (left keys over the
/// columns of `input`), as deep inside `input` as its keys allow.
fn place(
    input: LogicalPlan,
    sub: LogicalPlan,
    kind: JoinKind,
    on: Vec<(Expr, Expr)>,
) -> LogicalPlan {
    let mut cols = Vec::new();
    for (key, _) in &on {
        key.columns(&mut cols);
    }
    match input {
        // Through a projection when each key column is a plain column below.
        LogicalPlan::Project {
            input,
            exprs,
            schema,
        } if cols
            .iter()
            .all(|&c| matches!(exprs.get(c), Some(Expr::Column(_)))) =>
        {
            let below = |c: usize| match exprs.get(c) {
                Some(Expr::Column(b)) => *b,
                _ => c,
            };
            let on = on
                .into_iter()
                .map(|(k, s)| (k.remap_columns(&below), s))
                .collect();
            LogicalPlan::Project {
                input: Box::new(place(*input, sub, kind, on)),
                exprs,
                schema,
            }
        }
        LogicalPlan::Join {
            left,
            right,
            kind: JoinKind::Inner,
            on: join_on,
            filter,
            schema,
        } => {
            let nl = left.schema().fields().len();
            let (left, right) = if cols.iter().all(|&c| c < nl) {
                (Box::new(place(*left, sub, kind, on)), right)
            } else if cols.iter().all(|&c| c >= nl) {
                let on = on
                    .into_iter()
                    .map(|(k, s)| (k.remap_columns(&|c| c - nl), s))
                    .collect();
                (left, Box::new(place(*right, sub, kind, on)))
            } else {
                let join = LogicalPlan::Join {
                    left,
                    right,
                    kind: JoinKind::Inner,
                    on: join_on,
                    filter,
                    schema,
                };
                return LogicalPlan::join(join, sub, kind, on, None);
            };
            // (a semi join keeps its input's schema: the inner join's holds)
            LogicalPlan::Join {
                left,
                right,
                kind: JoinKind::Inner,
                on: join_on,
                filter,
                schema,
            }
        }
        other => LogicalPlan::join(other, sub, kind, on, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optimizer::test_plans::{col, values};

    #[test]
    fn a_semi_join_goes_to_the_side_of_its_key_through_a_projection() {
        // Semi(Project[b_key, a_x](Inner(A[a_key, a_x], B[b_key, b_y])), S) on column 0
        let inner = LogicalPlan::join(
            values(&["a_key", "a_x"], 1),
            values(&["b_key", "b_y"], 1),
            JoinKind::Inner,
            vec![(col(0), col(0))],
            None,
        );
        let project =
            LogicalPlan::project(inner, vec![col(2), col(1)], &["b_key".into(), "a_x".into()])
                .unwrap();
        let semi = LogicalPlan::join(
            project,
            values(&["s"], 1),
            JoinKind::Semi,
            vec![(col(0), col(0))],
            None,
        );
        let before = semi.schema();
        let out = push_down_semi_joins(semi).unwrap();
        assert_eq!(out.schema(), before);
        let text = out.to_string();
        // the semi join now sits on B, keyed by B's own column 0
        let semi_at = text.find("SemiJoin").unwrap();
        let inner_at = text.find("InnerJoin").unwrap();
        assert!(inner_at < semi_at, "{text}");
        assert!(text.contains("SemiJoin: b_key = s"), "{text}");
    }

    #[test]
    fn keys_from_both_sides_or_a_residual_filter_keep_it_in_place() {
        let inner = || {
            LogicalPlan::join(
                values(&["a"], 1),
                values(&["b"], 1),
                JoinKind::Inner,
                vec![(col(0), col(0))],
                None,
            )
        };
        let both = LogicalPlan::join(
            inner(),
            values(&["s"], 1),
            JoinKind::Anti,
            vec![(col(0), col(0)), (col(1), col(0))],
            None,
        );
        let text = push_down_semi_joins(both).unwrap().to_string();
        assert!(
            text.find("AntiJoin").unwrap() < text.find("InnerJoin").unwrap(),
            "{text}"
        );
        let filtered = LogicalPlan::join(
            inner(),
            values(&["s"], 1),
            JoinKind::Semi,
            vec![(col(0), col(0))],
            Some(Expr::binary(crate::plan::BinaryOp::NotEq, col(1), col(2))),
        );
        let text = push_down_semi_joins(filtered).unwrap().to_string();
        assert!(
            text.find("SemiJoin").unwrap() < text.find("InnerJoin").unwrap(),
            "{text}"
        );
    }
}
