//! Subplans that occur more than once in a plan: a CTE read twice (TPC-H
//! Q15's revenue view) or the same join in a query and its subquery. The
//! lowering computes each once and lets every occurrence read its output.

use std::sync::Arc;

use crate::plan::LogicalPlan;

/// The largest subplans that occur at least twice, end in an aggregate or
/// a join and read at least `SHARED_MIN_ROWS` rows, or an unknown number
/// (below that, computing
/// them again costs about what storing and reading a copy would, and the
/// copy makes its readers wait for all of it). One representative each, in
/// the order a pre-order walk meets them.
pub fn repeated_subplans(plan: &LogicalPlan) -> Vec<&LogicalPlan> {
    let mut all = Vec::new();
    collect(plan, &mut all);
    let mut found: Vec<&LogicalPlan> = Vec::new();
    mark(plan, &all, &mut found);
    found
}

/// The rows a repeated subplan's tables must hold for it to be shared:
/// recomputing a join over 10,000 suppliers (TPC-H Q2 at SF 1) was faster
/// than sharing it, sharing one over 800,000 partsupp rows (Q11) a third
/// faster than computing it twice.
const SHARED_MIN_ROWS: usize = 250_000;

/// The rows of the tables `plan` scans, by their statistics; None when a
/// table does not tell (a CSV file), which may be large.
fn rows_read(plan: &LogicalPlan) -> Option<usize> {
    match plan {
        LogicalPlan::Scan(scan) => scan.provider.statistics().num_rows,
        _ => plan.inputs().into_iter().map(rows_read).sum(),
    }
}

fn collect<'a>(plan: &'a LogicalPlan, out: &mut Vec<&'a LogicalPlan>) {
    out.push(plan);
    for input in plan.inputs() {
        collect(input, out);
    }
}

/// Walks down from the root and stops at the first repeated subplan of a
/// branch: the subplans inside it are computed with it, once.
fn mark<'a>(plan: &'a LogicalPlan, all: &[&'a LogicalPlan], found: &mut Vec<&'a LogicalPlan>) {
    let worth = matches!(
        plan,
        LogicalPlan::Aggregate { .. } | LogicalPlan::Join { .. }
    ) && rows_read(plan).is_none_or(|rows| rows >= SHARED_MIN_ROWS);
    if worth && all.iter().filter(|p| same_plan(p, plan)).count() > 1 {
        if !found.iter().any(|p| same_plan(p, plan)) {
            found.push(plan);
        }
        return;
    }
    for input in plan.inputs() {
        mark(input, all, found);
    }
}

/// Whether `a` and `b` compute the same rows, column for column: the same
/// operators over the same expressions and tables. (Every function quarry
/// has is deterministic, so equal plans give equal answers.)
pub fn same_plan(a: &LogicalPlan, b: &LogicalPlan) -> bool {
    use LogicalPlan as P;
    match (a, b) {
        (P::Scan(x), P::Scan(y)) => {
            Arc::ptr_eq(&x.provider, &y.provider)
                && x.projection == y.projection
                && x.filters == y.filters
        }
        (
            P::Filter {
                input: i1,
                predicate: p1,
            },
            P::Filter {
                input: i2,
                predicate: p2,
            },
        ) => p1 == p2 && same_plan(i1, i2),
        (
            P::Project {
                input: i1,
                exprs: e1,
                schema: s1,
            },
            P::Project {
                input: i2,
                exprs: e2,
                schema: s2,
            },
        ) => e1 == e2 && s1 == s2 && same_plan(i1, i2),
        (
            P::Aggregate {
                input: i1,
                group: g1,
                aggs: a1,
                schema: s1,
            },
            P::Aggregate {
                input: i2,
                group: g2,
                aggs: a2,
                schema: s2,
            },
        ) => g1 == g2 && a1 == a2 && s1 == s2 && same_plan(i1, i2),
        (
            P::Sort {
                input: i1,
                keys: k1,
                fetch: f1,
            },
            P::Sort {
                input: i2,
                keys: k2,
                fetch: f2,
            },
        ) => k1 == k2 && f1 == f2 && same_plan(i1, i2),
        (
            P::Limit {
                input: i1,
                skip: s1,
                fetch: f1,
            },
            P::Limit {
                input: i2,
                skip: s2,
                fetch: f2,
            },
        ) => s1 == s2 && f1 == f2 && same_plan(i1, i2),
        (
            P::Join {
                left: l1,
                right: r1,
                kind: k1,
                on: o1,
                filter: f1,
                schema: s1,
            },
            P::Join {
                left: l2,
                right: r2,
                kind: k2,
                on: o2,
                filter: f2,
                schema: s2,
            },
        ) => k1 == k2 && o1 == o2 && f1 == f2 && s1 == s2 && same_plan(l1, l2) && same_plan(r1, r2),
        // inline rows are cheap to repeat
        (
            P::Union {
                inputs: i1,
                schema: s1,
            },
            P::Union {
                inputs: i2,
                schema: s2,
            },
        ) => s1 == s2 && i1.len() == i2.len() && i1.iter().zip(i2).all(|(x, y)| same_plan(x, y)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use datafusion_common::ScalarValue;

    use super::*;
    use crate::optimizer::test_plans::{col, table};
    use crate::plan::{AggFunc, AggregateExpr, BinaryOp, Expr, JoinKind};

    /// SELECT a, count(*) FROM t WHERE b = `b` GROUP BY a
    fn counts(t: &LogicalPlan, b: i64) -> LogicalPlan {
        let filtered = LogicalPlan::Filter {
            input: Box::new(t.clone()),
            predicate: Expr::binary(BinaryOp::Eq, col(1), Expr::lit(ScalarValue::Int64(Some(b)))),
        };
        let aggs = vec![AggregateExpr {
            func: AggFunc::CountStar,
            arg: None,
            distinct: false,
            param: None,
        }];
        LogicalPlan::aggregate(filtered, vec![col(0)], aggs, &["a".into(), "n".into()]).unwrap()
    }

    fn self_join(left: LogicalPlan, right: LogicalPlan) -> LogicalPlan {
        LogicalPlan::join(left, right, JoinKind::Inner, vec![(col(0), col(0))], None)
    }

    #[test]
    fn the_same_aggregate_twice_is_found_once_and_a_different_one_not() {
        let t = table(&["a", "b"], 1_000_000, 0, 9);
        let plan = self_join(counts(&t, 1), counts(&t, 1));
        let found = repeated_subplans(&plan);
        assert_eq!(found.len(), 1);
        assert!(matches!(found[0], LogicalPlan::Aggregate { .. }));
        // another filter constant, or another table with the same columns
        assert!(repeated_subplans(&self_join(counts(&t, 1), counts(&t, 2))).is_empty());
        let other = table(&["a", "b"], 1_000_000, 0, 9);
        assert!(repeated_subplans(&self_join(counts(&t, 1), counts(&other, 1))).is_empty());
        // over a small table: computed twice
        let small = table(&["a", "b"], SHARED_MIN_ROWS - 1, 0, 9);
        assert!(repeated_subplans(&self_join(counts(&small, 1), counts(&small, 1))).is_empty());
    }

    #[test]
    fn only_the_outermost_repeat_is_shared() {
        // the join of two equal aggregates, itself used twice
        let t = table(&["a", "b"], 1_000_000, 0, 9);
        let inner = self_join(counts(&t, 1), counts(&t, 1));
        let plan = self_join(inner.clone(), inner);
        let found = repeated_subplans(&plan);
        assert_eq!(found.len(), 1);
        assert!(matches!(found[0], LogicalPlan::Join { .. }));
    }
}
