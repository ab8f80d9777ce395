//! Conditions of an outer (or semi / anti) join that read only the side
//! whose rows are merely *matched* — never preserved — move into that side's
//! input as a filter: `customer LEFT JOIN orders ON c_custkey = o_custkey AND
//! o_comment NOT LIKE '…'` filters orders once per order (and in their scan)
//! instead of once per joined pair (TPC-H Q13).
//!
//! Sound because such a conjunct `p(r)` depends on the matched side's row
//! alone: a pair (l, r) matches iff the rest of the condition holds and
//! `p(r)` is true, i.e. iff r is a row of `σ_p(R)` and the rest holds. Rows
//! of the preserved side are kept (null-extended) either way, so only the
//! non-preserved side may be filtered: the right input of LEFT, SEMI and
//! ANTI joins, the left input of RIGHT, RIGHT SEMI and RIGHT ANTI joins,
//! never either side of a FULL join. (Inner joins are handled by
//! join_order; mark joins are left alone, their NULL logic depends on the
//! unmatched pairs.)

use super::map_inputs;
use crate::error::Result;
use crate::plan::{BinaryOp, Expr, JoinKind, LogicalPlan, ScalarFunc};

pub fn push_down_outer_join_filters(plan: LogicalPlan) -> Result<LogicalPlan> {
    let plan = map_inputs(plan, &mut push_down_outer_join_filters)?;
    let LogicalPlan::Join {
        left,
        right,
        kind,
        on,
        filter: Some(filter),
        schema,
    } = plan
    else {
        return Ok(plan);
    };
    let nl = left.schema().fields().len();
    // Which input may be filtered: true for the right one.
    let filter_right = match kind {
        JoinKind::Left | JoinKind::Semi | JoinKind::Anti => true,
        JoinKind::Right | JoinKind::RightSemi | JoinKind::RightAnti => false,
        JoinKind::Inner | JoinKind::Full | JoinKind::Mark => {
            return Ok(LogicalPlan::Join {
                left,
                right,
                kind,
                on,
                filter: Some(filter),
                schema,
            })
        }
    };
    let mut moved = Vec::new();
    let mut kept = Vec::new();
    for c in filter.split_conjunction() {
        let mut cols = Vec::new();
        c.columns(&mut cols);
        let on_side = if filter_right {
            cols.iter().all(|&i| i >= nl)
        } else {
            cols.iter().all(|&i| i < nl)
        };
        if on_side && !may_fail_on_other_rows(&c) {
            moved.push(c);
        } else {
            kept.push(c);
        }
    }
    if moved.is_empty() {
        return Ok(LogicalPlan::Join {
            left,
            right,
            kind,
            on,
            filter: Some(Expr::and_all(kept)),
            schema,
        });
    }
    let predicate = Expr::and_all(moved);
    let (left, right) = if filter_right {
        let predicate = predicate.remap_columns(&|i| i - nl);
        (left, Box::new(add_filter(*right, predicate)))
    } else {
        (Box::new(add_filter(*left, predicate)), right)
    };
    let filter = (!kept.is_empty()).then(|| Expr::and_all(kept));
    // The inputs keep their schemas, so the join's holds.
    Ok(LogicalPlan::Join {
        left,
        right,
        kind,
        on,
        filter,
        schema,
    })
}

/// A conjunct that can raise an error by itself (a scalar subquery's
/// single-row check) stays where it is: as a filter it would also see rows
/// that never meet a key match.
pub(crate) fn may_fail_on_other_rows(e: &Expr) -> bool {
    let mut fails = false;
    e.visit(&mut |x| {
        if matches!(
            x,
            Expr::Function {
                func: ScalarFunc::AssertSingleRow,
                ..
            }
        ) {
            fails = true;
        }
    });
    fails
}

/// `plan` filtered by `predicate`: merged into a filter already there, or
/// moved below projections that pass its columns through unchanged, so that
/// it lands right above a scan where scan_filters can use it.
pub(crate) fn add_filter(plan: LogicalPlan, predicate: Expr) -> LogicalPlan {
    match plan {
        LogicalPlan::Filter {
            input,
            predicate: p,
        } => LogicalPlan::Filter {
            input,
            predicate: Expr::binary(BinaryOp::And, p, predicate),
        },
        LogicalPlan::Project {
            input,
            exprs,
            schema,
        } if {
            let mut cols = Vec::new();
            predicate.columns(&mut cols);
            cols.iter()
                .all(|&c| matches!(exprs.get(c), Some(Expr::Column(_))))
        } =>
        {
            let below = |c: usize| match exprs.get(c) {
                Some(Expr::Column(b)) => *b,
                _ => c,
            };
            let predicate = predicate.remap_columns(&below);
            LogicalPlan::Project {
                input: Box::new(add_filter(*input, predicate)),
                exprs,
                schema,
            }
        }
        other => LogicalPlan::Filter {
            input: Box::new(other),
            predicate,
        },
    }
}

#[cfg(test)]
mod tests {

    use datafusion_common::ScalarValue;

    use super::*;
    use crate::optimizer::test_plans::{col, values};

    fn gt(c: usize, v: i64) -> Expr {
        Expr::binary(BinaryOp::Gt, col(c), Expr::lit(ScalarValue::Int64(Some(v))))
    }

    /// A [a, x] ⋈ B [b, y] on a = b with `filter`.
    fn join(kind: JoinKind, filter: Expr) -> LogicalPlan {
        LogicalPlan::join(
            values(&["a", "x"], 1),
            values(&["b", "y"], 1),
            kind,
            vec![(col(0), col(0))],
            Some(filter),
        )
    }

    #[test]
    fn a_left_join_filters_its_right_input_with_right_only_conjuncts() {
        // y > 5 (right only) moves, x > 1 (left only) and x < y stay
        let filter = Expr::and_all(vec![
            gt(3, 5),
            gt(1, 1),
            Expr::binary(BinaryOp::Lt, col(1), col(3)),
        ]);
        let plan = join(JoinKind::Left, filter);
        let before = plan.schema();
        let out = push_down_outer_join_filters(plan).unwrap();
        assert_eq!(out.schema(), before);
        let text = out.to_string();
        assert!(
            text.contains("LeftJoin: a = b filter=((x > 1) AND (x < y))"),
            "{text}"
        );
        assert!(text.contains("Filter: (y > 5)"), "{text}");
        assert!(
            text.find("LeftJoin").unwrap() < text.find("Filter").unwrap(),
            "{text}"
        );
    }

    #[test]
    fn a_right_join_filters_its_left_input_and_a_full_join_nothing() {
        let out = push_down_outer_join_filters(join(JoinKind::Right, gt(1, 1)))
            .unwrap()
            .to_string();
        assert!(out.contains("RightJoin: a = b\n"), "{out}");
        assert!(out.contains("Filter: (x > 1)"), "{out}");
        // the left (preserved) side's condition stays on a left join
        let out = push_down_outer_join_filters(join(JoinKind::Left, gt(1, 1)))
            .unwrap()
            .to_string();
        assert!(out.contains("filter=(x > 1)"), "{out}");
        assert!(!out.contains("Filter:"), "{out}");
        for kind in [JoinKind::Full, JoinKind::Mark] {
            let out = push_down_outer_join_filters(join(kind, gt(3, 5)))
                .unwrap()
                .to_string();
            assert!(out.contains("filter=(y > 5)"), "{out}");
            assert!(!out.contains("Filter:"), "{out}");
        }
    }

    #[test]
    fn semi_and_anti_joins_filter_their_subquery_side_through_a_projection() {
        for kind in [JoinKind::Semi, JoinKind::Anti] {
            let right = LogicalPlan::project(
                values(&["y", "b"], 1),
                vec![col(1), col(0)],
                &["b".into(), "y".into()],
            )
            .unwrap();
            let plan = LogicalPlan::join(
                values(&["a", "x"], 1),
                right,
                kind,
                vec![(col(0), col(0))],
                Some(gt(3, 5)),
            );
            let text = push_down_outer_join_filters(plan).unwrap().to_string();
            // below the projection, over its input's columns
            let filter_at = text
                .find("Filter: (y > 5)")
                .unwrap_or_else(|| panic!("{text}"));
            assert!(text.find("Project").unwrap() < filter_at, "{text}");
            assert!(!text.contains("filter="), "{text}");
        }
    }
}
