//! Cardinality estimates, from Parquet row counts and fixed selectivities.
//! Rough on purpose: they only have to rank join orders and pick build
//! sides and broadcast joins sensibly.

use crate::plan::{BinaryOp, Expr, JoinKind, LogicalPlan};

/// Rows a table reports no statistics for (CSV) are assumed to be this many.
const UNKNOWN_ROWS: f64 = 1_000_000.0;

#[derive(Debug, Clone, Copy)]
pub struct Estimate {
    /// Estimated output rows.
    pub rows: f64,
    /// Rows of the largest base table under this plan before filtering:
    /// `rows / base` is how selective the plan is.
    pub base: f64,
}

/// At most how many groups grouping `input` by `group` makes: the product
/// of the keys' distinct counts, when statistics give them all.
pub fn known_groups(input: &LogicalPlan, group: &[Expr]) -> Option<f64> {
    group
        .iter()
        .map(|g| key_distinct(input, g))
        .try_fold(1.0, |acc, d| d.map(|d| acc * d))
}

/// The rows a LATERAL series is guessed to give per input row.
const SERIES_ROWS_PER_ROW: f64 = 10.0;

pub fn estimate(plan: &LogicalPlan) -> Estimate {
    match plan {
        LogicalPlan::Scan(s) => {
            let rows = s
                .provider
                .statistics()
                .num_rows
                .map_or(UNKNOWN_ROWS, |n| n as f64);
            Estimate { rows, base: rows }
        }
        LogicalPlan::Values { batches, .. } => {
            let rows = batches.iter().map(|b| b.num_rows()).sum::<usize>() as f64;
            Estimate { rows, base: rows }
        }
        LogicalPlan::Filter { input, predicate } => {
            let e = estimate(input);
            Estimate {
                rows: (e.rows * filter_selectivity(input, predicate)).max(1.0),
                base: e.base,
            }
        }
        LogicalPlan::Project { input, .. }
        | LogicalPlan::Window { input, .. }
        | LogicalPlan::Sort {
            input, fetch: None, ..
        } => estimate(input),
        LogicalPlan::Sort {
            input,
            fetch: Some(k),
            ..
        } => {
            let e = estimate(input);
            Estimate {
                rows: e.rows.min(*k as f64),
                base: e.base,
            }
        }
        LogicalPlan::Limit { input, fetch, .. } => {
            let e = estimate(input);
            Estimate {
                rows: fetch.map_or(e.rows, |f| e.rows.min(f as f64)),
                base: e.base,
            }
        }
        // (how long a row's series is, statistics do not say)
        LogicalPlan::Series { input, .. } => {
            let e = estimate(input);
            Estimate {
                rows: e.rows * SERIES_ROWS_PER_ROW,
                base: e.base,
            }
        }
        LogicalPlan::Aggregate { input, group, .. } => {
            let e = estimate(input);
            let rows = if group.is_empty() {
                1.0
            } else {
                let distinct = known_groups(input, group);
                (e.rows / 2.0).min(distinct.unwrap_or(f64::MAX)).max(1.0)
            };
            Estimate { rows, base: rows }
        }
        LogicalPlan::Join {
            left,
            right,
            kind,
            on,
            ..
        } => {
            let (l, r) = (estimate(left), estimate(right));
            let rows = match kind {
                JoinKind::Semi | JoinKind::Anti => l.rows * 0.5,
                JoinKind::RightSemi | JoinKind::RightAnti => r.rows * 0.5,
                JoinKind::Mark | JoinKind::Left => l.rows,
                JoinKind::Right => r.rows,
                JoinKind::Full => l.rows + r.rows,
                JoinKind::Inner if on.is_empty() => l.rows * r.rows,
                JoinKind::Inner => join_rows(left, l, right, r, on),
            };
            Estimate {
                rows: rows.max(1.0),
                base: l.base.max(r.base),
            }
        }
        LogicalPlan::Union { inputs, .. } => {
            let parts: Vec<Estimate> = inputs.iter().map(estimate).collect();
            Estimate {
                rows: parts.iter().map(|e| e.rows).sum(),
                base: parts.iter().map(|e| e.base).fold(0.0, f64::max),
            }
        }
    }
}

/// Rows of an equi-join: |L| · |R| / the larger distinct count of the
/// keys. A side's distinct keys are the product of each key column's
/// distinct values (each at most the keys the other side's table holds
/// sparsely over its range), at most its rows (a side without statistics
/// for a key counts its rows as distinct): partsupp's (partkey, suppkey)
/// pairs are as many as its rows, not as few as its part keys.
pub fn join_rows(
    left: &LogicalPlan,
    l: Estimate,
    right: &LogicalPlan,
    r: Estimate,
    on: &[(Expr, Expr)],
) -> f64 {
    let keys: Vec<(KeyStats, KeyStats)> = on
        .iter()
        .map(|(lk, rk)| (key_stats(left, lk), key_stats(right, rk)))
        .collect();
    join_rows_of(l.rows, r.rows, &keys)
}

/// What a join estimate knows of one side of a key.
#[derive(Debug, Clone, Copy, Default)]
struct KeyStats {
    /// Distinct values from the column's range, before capping by rows.
    range: Option<f64>,
    /// Distinct values of the table column before any filter, when they
    /// are sparse: fewer than its range is wide (orders' keys, not its
    /// customers' or lineitem's order keys).
    sparse: Option<f64>,
}

/// The statistics of key expression `key` over `plan`'s output.
fn key_stats(plan: &LogicalPlan, key: &Expr) -> KeyStats {
    KeyStats {
        range: key_column(key).and_then(|i| column_range_width(plan, i)),
        sparse: sparse_distinct(plan, key),
    }
}

/// `join_rows` from the sides' rows and each key's statistics.
fn join_rows_of(l_rows: f64, r_rows: f64, keys: &[(KeyStats, KeyStats)]) -> f64 {
    // A key's values that can find a match are among the other side's
    // table's values: lineitem's order keys range as wide as its 60M
    // rows, but match at most the 15M keys orders holds sparsely over
    // that range.
    let distinct = |rows: f64, left_side: bool| {
        keys.iter()
            .map(|&(l, r)| {
                let (mine, other) = if left_side { (l, r) } else { (r, l) };
                let d = mine.range.unwrap_or(rows).min(rows);
                other.sparse.map_or(d, |b| d.min(b))
            })
            .fold(1.0, |product, d| product * d)
            .min(rows)
    };
    let dl = distinct(l_rows, true);
    let dr = distinct(r_rows, false);
    l_rows * r_rows / dl.max(dr).max(1.0)
}

/// The column a key reads, possibly through a cast.
fn key_column(key: &Expr) -> Option<usize> {
    match key {
        Expr::Column(i) => Some(*i),
        Expr::Cast { expr, .. } => key_column(expr),
        _ => None,
    }
}

/// The width of the range of output column `i` of `plan` (integers and
/// dates only).
fn column_range_width(plan: &LogicalPlan, i: usize) -> Option<f64> {
    let t = plan.schema().fields().get(i)?.data_type().clone();
    if !(t.is_integer() || t == arrow::datatypes::DataType::Date32) {
        return None;
    }
    let (lo, hi) = column_range(plan, i)?;
    Some(hi - lo + 1.0)
}

/// Distinct values of a key expression (a column, possibly cast).
fn key_distinct(plan: &LogicalPlan, key: &Expr) -> Option<f64> {
    column_distinct(plan, key_column(key)?)
}

/// Distinct values of output column `i` of `plan`: for integers and dates,
/// the width of their range in the table's statistics, capped by the
/// plan's estimated rows.
pub fn column_distinct(plan: &LogicalPlan, i: usize) -> Option<f64> {
    Some(column_range_width(plan, i)?.min(estimate(plan).rows))
}

/// The (min, max) of output column `i` of `plan`, traced to a table column.
pub fn column_range(plan: &LogicalPlan, i: usize) -> Option<(f64, f64)> {
    column_origin(plan, i).map(|o| (o.min, o.max))
}

/// The share of the rows of the table under `key` (a column of `plan`)
/// that `plan` is estimated to keep: of a join key, about the share of the
/// other side's rows that can find a match.
pub fn share_of_table(plan: &LogicalPlan, key: &Expr) -> Option<f64> {
    let origin = column_origin(plan, key_column(key)?)?;
    Some((estimate(plan).rows / origin.table_rows.max(1.0)).min(1.0))
}

/// Distinct values the table column under `key` has before any filter,
/// if it has fewer rows than its range is wide (then its rows).
fn sparse_distinct(plan: &LogicalPlan, key: &Expr) -> Option<f64> {
    let i = key_column(key)?;
    let width = column_range_width(plan, i)?;
    let rows = column_origin(plan, i)?.table_rows;
    (rows < width).then_some(rows)
}

/// A table column's statistics: its range and the table's rows.
struct Origin {
    min: f64,
    max: f64,
    table_rows: f64,
}

/// The statistics of the table column under output column `i` of `plan`.
fn column_origin(plan: &LogicalPlan, i: usize) -> Option<Origin> {
    match plan {
        LogicalPlan::Scan(s) => {
            let (min, max) = s.provider.column_range(*s.projection.get(i)?)?;
            let table_rows = s
                .provider
                .statistics()
                .num_rows
                .map_or(UNKNOWN_ROWS, |n| n as f64);
            Some(Origin {
                min,
                max,
                table_rows,
            })
        }
        LogicalPlan::Filter { input, .. }
        | LogicalPlan::Sort { input, .. }
        | LogicalPlan::Limit { input, .. } => column_origin(input, i),
        LogicalPlan::Project { input, exprs, .. } => expr_origin(input, exprs.get(i)?),
        // (a window function's column has no table column under it)
        LogicalPlan::Window { input, .. } => column_origin(input, i),
        LogicalPlan::Series { input, .. } => {
            // (the series' own column has none either)
            if i < input.schema().fields().len() {
                column_origin(input, i)
            } else {
                None
            }
        }
        LogicalPlan::Aggregate { input, group, .. } => expr_origin(input, group.get(i)?),
        LogicalPlan::Join {
            left, right, kind, ..
        } => {
            let nl = left.schema().fields().len();
            if matches!(kind, JoinKind::RightSemi | JoinKind::RightAnti) {
                column_origin(right, i)
            } else if i < nl {
                column_origin(left, i)
            } else if matches!(
                kind,
                JoinKind::Inner | JoinKind::Left | JoinKind::Right | JoinKind::Full
            ) {
                column_origin(right, i - nl)
            } else {
                None
            }
        }
        LogicalPlan::Union { inputs, .. } => inputs
            .iter()
            .map(|p| column_origin(p, i))
            .collect::<Option<Vec<_>>>()?
            .into_iter()
            .reduce(|a, b| Origin {
                min: a.min.min(b.min),
                max: a.max.max(b.max),
                table_rows: a.table_rows + b.table_rows,
            }),
        LogicalPlan::Values { .. } => None,
    }
}

fn expr_origin(plan: &LogicalPlan, e: &Expr) -> Option<Origin> {
    match e {
        Expr::Column(i) => column_origin(plan, *i),
        _ => None,
    }
}

/// A literal as a number on the scale `column_range` uses.
fn literal_value(v: &datafusion_common::ScalarValue) -> Option<f64> {
    use datafusion_common::ScalarValue as S;
    match v {
        S::Date32(Some(d)) => Some(*d as f64),
        S::Decimal128(Some(x), _, s) => Some(*x as f64 / 10f64.powi(*s as i32)),
        other => match other.cast_to(&arrow::datatypes::DataType::Float64) {
            Ok(S::Float64(Some(f))) => Some(f),
            _ => None,
        },
    }
}

/// The selectivity of a filter over `input`: range conditions on one column
/// are combined and measured against the column's min/max; the rest use
/// fixed guesses.
pub fn filter_selectivity(input: &LogicalPlan, predicate: &Expr) -> f64 {
    let mut bounds: std::collections::BTreeMap<usize, (f64, f64)> =
        std::collections::BTreeMap::new();
    let mut sel = 1.0;
    for c in predicate.clone().split_conjunction() {
        let range = match &c {
            Expr::Binary { op, left, right }
                if op.is_comparison() && !matches!(op, BinaryOp::NotEq | BinaryOp::Eq) =>
            {
                match (left.as_ref(), right.as_ref()) {
                    (Expr::Column(col), Expr::Literal(v)) => {
                        literal_value(v).map(|x| (*col, *op, x))
                    }
                    (Expr::Literal(v), Expr::Column(col)) => {
                        literal_value(v).map(|x| (*col, op.swap(), x))
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        match range.and_then(|(col, op, x)| column_range(input, col).map(|r| (col, op, x, r))) {
            Some((col, op, x, (min, max))) => {
                let b = bounds.entry(col).or_insert((min, max));
                match op {
                    BinaryOp::Lt | BinaryOp::LtEq => b.1 = b.1.min(x),
                    _ => b.0 = b.0.max(x),
                }
            }
            None => sel *= selectivity(&c),
        }
    }
    for (col, (lo, hi)) in bounds {
        if let Some((min, max)) = column_range(input, col) {
            let width = (max - min).max(1.0);
            sel *= ((hi - lo) / width).clamp(0.001, 1.0);
        }
    }
    sel
}

/// The fraction of rows a predicate keeps.
pub fn selectivity(e: &Expr) -> f64 {
    match e {
        Expr::Binary {
            op: BinaryOp::And,
            left,
            right,
        } => selectivity(left) * selectivity(right),
        Expr::Binary {
            op: BinaryOp::Or,
            left,
            right,
        } => (selectivity(left) + selectivity(right)).min(1.0),
        Expr::Binary { op, left, right } if op.is_comparison() => {
            let column_vs_column = !left.is_constant() && !right.is_constant();
            match op {
                BinaryOp::Eq if column_vs_column => 0.1,
                BinaryOp::Eq => 0.05,
                BinaryOp::NotEq => 0.9,
                _ if column_vs_column => 0.5,
                _ => 0.4,
            }
        }
        Expr::Not(inner) => 1.0 - selectivity(inner),
        Expr::InList { list, negated, .. } => {
            let s = (0.05 * list.len() as f64).min(0.5);
            if *negated {
                1.0 - s
            } else {
                s
            }
        }
        Expr::Like { negated, .. } => {
            if *negated {
                0.9
            } else {
                0.1
            }
        }
        Expr::IsNull(_) => 0.05,
        Expr::IsNotNull(_) => 0.95,
        _ => 0.5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optimizer::test_plans::{col, table};
    use crate::plan::{AggFunc, AggregateExpr};

    fn grouped_by(input: LogicalPlan, keys: usize) -> LogicalPlan {
        let aggs = vec![AggregateExpr {
            func: AggFunc::CountStar,
            arg: None,
            distinct: false,
            param: None,
        }];
        let names: Vec<String> = (0..=keys).map(|i| format!("c{i}")).collect();
        LogicalPlan::aggregate(input, (0..keys).map(col).collect(), aggs, &names).unwrap()
    }

    #[test]
    fn groups_are_at_most_the_product_of_the_keys_distinct_values() {
        // 6M rows whose keys range over 1..=10 000 (TPC-H's l_suppkey)
        let t = || table(&["a", "b"], 6_000_000, 1, 10_000);
        assert_eq!(estimate(&grouped_by(t(), 1)).rows, 10_000.0);
        // two keys: 10^8 combinations, so half the rows, as without statistics
        assert_eq!(estimate(&grouped_by(t(), 2)).rows, 3_000_000.0);
    }

    #[test]
    fn a_join_on_two_keys_counts_their_combinations() {
        // lineitem-like L (6M rows) and partsupp-like R (800K rows), both
        // keys ranging over 1..=200 000: R has as many key pairs as rows
        let l = table(&["lp", "ls"], 6_000_000, 1, 200_000);
        let r = table(&["rp", "rs"], 800_000, 1, 200_000);
        let (el, er) = (estimate(&l), estimate(&r));
        let one_key = join_rows(&l, el, &r, er, &[(col(0), col(0))]);
        assert_eq!(one_key, 6_000_000.0 * 800_000.0 / 200_000.0);
        let two_keys = join_rows(&l, el, &r, er, &[(col(0), col(0)), (col(1), col(1))]);
        assert_eq!(two_keys, 800_000.0);
    }

    #[test]
    fn a_key_matches_at_most_the_keys_the_other_table_holds_sparsely() {
        // lineitem-like L: 6M rows whose order keys span 1..=6M; orders-like
        // O: 1.5M keys spread over the same range. Every L row has its O row.
        let l = table(&["lk"], 6_000_000, 1, 6_000_000);
        let o = table(&["ok"], 1_500_000, 1, 6_000_000);
        let rows = join_rows(&l, estimate(&l), &o, estimate(&o), &[(col(0), col(0))]);
        assert_eq!(rows, 6_000_000.0);
        // a dense key (as many rows as its range is wide) caps nothing
        let c = table(&["ck"], 150_000, 1, 150_000);
        let f = table(&["fk"], 6_000_000, 1, 1_500_000);
        let rows = join_rows(&f, estimate(&f), &c, estimate(&c), &[(col(0), col(0))]);
        assert_eq!(rows, 6_000_000.0 * 150_000.0 / 1_500_000.0);
    }
}
