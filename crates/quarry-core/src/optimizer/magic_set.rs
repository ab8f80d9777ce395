//! Semi-join reduction ("magic sets") of grouped join inputs. A correlated
//! scalar subquery is decorrelated into `outer LEFT JOIN (SELECT k, agg(…)
//! FROM x GROUP BY k) ON outer.k = k`, which aggregates every group of `x`
//! although only the groups whose key the outer side holds are ever used
//! (TPC-H Q17: 200 000 groups of lineitem for the ~200 filtered parts).
//! When a cheap subtree S of the outer side holds all its key values, the
//! aggregate's input is first semi-joined with S: `GROUP BY k (x ⋉ S)`.
//!
//! Sound because (1) the join only ever uses the groups whose key equals an
//! outer row's key (a NULL key matches nothing, so neither does a NULL
//! group); (2) every non-NULL key of the outer side's rows is a key of S:
//! between S and the join there are only operators that drop or duplicate
//! rows of S, pass its key columns through unchanged, or (equi-join keys)
//! equate them with a column of S; and (3) a group keeps all its rows, so
//! the groups that remain have the same values. The side of the aggregate
//! must be the one whose unmatched rows are dropped (mark joins, whose
//! answer depends on NULL groups, are left alone).
//!
//! S is computed twice, so it must be deterministic (no LIMIT) and cheap to
//! read (no more base rows than the aggregate reads), and its keys must be
//! estimated to keep under a quarter of the groups; of the subtrees that
//! qualify, the most selective wins, then the cheapest, then the deepest.
//!
//! When the outer side joins the aggregate's very input x with S on those
//! keys (Q17: `lineitem ⋈ part` outside, `avg(l_quantity)` of lineitem per
//! part inside) and every aggregate ignores repeated rows (min, max, avg),
//! the aggregate reads that join instead of `x ⋉ S`: a row of x repeats
//! once per matching row of S, the same number of times for every row of a
//! group, which leaves a group's minimum, maximum and average as they are.
//! Both sides then hold the same join, which is computed once (see
//! `plan::repeated`), instead of reading x a second time.

use super::cardinality::{column_distinct, estimate};
use super::map_inputs;
use crate::error::Result;
use crate::plan::repeated::same_plan;
use crate::plan::{AggFunc, AggregateExpr, Expr, JoinKind, LogicalPlan};

/// Apply only when S's keys are estimated to keep at most this fraction of
/// the groups: below it the semi join's probe is cheaper than aggregating.
const MAX_KEPT_FRACTION: f64 = 0.25;

pub fn reduce_grouped_joins(plan: LogicalPlan) -> Result<LogicalPlan> {
    let plan = map_inputs(plan, &mut reduce_grouped_joins)?;
    let LogicalPlan::Join {
        left,
        right,
        kind,
        on,
        filter,
        schema,
    } = plan
    else {
        return Ok(plan);
    };
    // The aggregate must be on a side whose unmatched rows are dropped.
    let (agg_right, agg_left) = match kind {
        JoinKind::Inner => (true, true),
        JoinKind::Left | JoinKind::Semi | JoinKind::Anti => (true, false),
        JoinKind::Right | JoinKind::RightSemi | JoinKind::RightAnti => (false, true),
        JoinKind::Full | JoinKind::Mark => (false, false),
    };
    let left_keys: Vec<Expr> = on.iter().map(|(l, _)| l.clone()).collect();
    let right_keys: Vec<Expr> = on.iter().map(|(_, r)| r.clone()).collect();
    let mut right = *right;
    let mut left = *left;
    let mut done = false;
    if agg_right {
        if let Some(reduced) = reduce(&left, &left_keys, &right, &right_keys)? {
            right = reduced;
            done = true;
        }
    }
    if agg_left && !done {
        if let Some(reduced) = reduce(&right, &right_keys, &left, &left_keys)? {
            left = reduced;
        }
    }
    // The inputs keep their schemas (a semi join keeps its left schema).
    Ok(LogicalPlan::Join {
        left: Box::new(left),
        right: Box::new(right),
        kind,
        on,
        filter,
        schema,
    })
}

/// A subtree of the outer side and, per join key, the column of it that
/// holds every (non-NULL) value the key takes at the join.
struct Candidate<'a> {
    plan: &'a LogicalPlan,
    cols: Vec<Option<usize>>,
    depth: usize,
}

/// A candidate that qualifies: the fraction of the groups its keys are
/// estimated to keep, the base rows it reads, and the (group, candidate
/// column) pairs of the semi join.
struct Scored<'a, 'b> {
    fraction: f64,
    cost: f64,
    cand: &'b Candidate<'a>,
    pairs: Vec<(usize, usize)>,
}

/// `grouped` with its aggregate's input semi-joined by the best candidate
/// of `outer`, or None when the shape does not match or it does not pay.
fn reduce(
    outer: &LogicalPlan,
    outer_keys: &[Expr],
    grouped: &LogicalPlan,
    grouped_keys: &[Expr],
) -> Result<Option<LogicalPlan>> {
    let key_cols: Vec<Option<usize>> = grouped_keys
        .iter()
        .map(|k| match k {
            Expr::Column(c) => Some(*c),
            _ => None,
        })
        .collect();
    let Some((aggregate, groups)) = find_aggregate(grouped, key_cols) else {
        return Ok(None);
    };
    let LogicalPlan::Aggregate { input, group, .. } = aggregate else {
        return Ok(None);
    };
    // Keys are traced from plain outer columns to group columns only.
    let outer_cols: Vec<Option<usize>> = outer_keys
        .iter()
        .zip(&groups)
        .map(|(k, g)| match (k, g) {
            (Expr::Column(c), Some(_)) => Some(*c),
            _ => None,
        })
        .collect();
    if outer_cols.iter().all(Option::is_none) {
        return Ok(None);
    }
    let mut candidates = Vec::new();
    trace(outer, outer_cols, 0, &mut candidates);

    let in_schema = input.schema();
    let agg_input_cost = scan_cost(input);
    let agg_groups = estimate(aggregate).rows;
    let mut scored: Vec<Scored> = Vec::new();
    for cand in &candidates {
        if has_limit(cand.plan) {
            continue;
        }
        let s_schema = cand.plan.schema();
        let s_rows = estimate(cand.plan).rows;
        let mut pairs = Vec::new();
        let mut fraction: f64 = 1.0;
        for (col, g) in cand.cols.iter().zip(&groups) {
            let (Some(c), Some(g)) = (col, g) else {
                continue;
            };
            let Some(g_expr) = group.get(*g) else {
                continue;
            };
            // The semi join compares values of one type.
            let same_type = match (s_schema.fields().get(*c), g_expr.data_type(&in_schema)) {
                (Some(f), Ok(t)) => f.data_type() == &t,
                _ => false,
            };
            if !same_type {
                continue;
            }
            let d_s = column_distinct(cand.plan, *c).unwrap_or(s_rows);
            let d_agg = match g_expr {
                Expr::Column(b) => column_distinct(input, *b),
                _ => None,
            }
            .unwrap_or(agg_groups);
            fraction = fraction.min(d_s / d_agg.max(1.0));
            pairs.push((*g, *c));
        }
        // S's rows bound the groups kept when it gives every group column.
        let mut covered: Vec<usize> = pairs.iter().map(|&(g, _)| g).collect();
        covered.sort_unstable();
        covered.dedup();
        if covered.len() == group.len() {
            fraction = fraction.min(s_rows / agg_groups.max(1.0));
        }
        let cost = scan_cost(cand.plan);
        if pairs.is_empty() || fraction >= MAX_KEPT_FRACTION || cost > agg_input_cost {
            continue;
        }
        scored.push(Scored {
            fraction,
            cost,
            cand,
            pairs,
        });
    }
    let Some(best_fraction) = scored.iter().map(|s| s.fraction).reduce(f64::min) else {
        return Ok(None);
    };
    // Nearly as selective (estimates are rough) but cheaper, or deeper.
    let Some(Scored { cand, pairs, .. }) = scored
        .into_iter()
        .filter(|s| s.fraction <= 2.0 * best_fraction)
        .min_by(|a, b| {
            a.cost
                .total_cmp(&b.cost)
                .then_with(|| b.cand.depth.cmp(&a.cand.depth))
        })
    else {
        return Ok(None);
    };

    // S' = the candidate projected to its distinct key columns.
    let s_schema = cand.plan.schema();
    let mut s_cols: Vec<usize> = pairs.iter().map(|&(_, c)| c).collect();
    s_cols.sort_unstable();
    s_cols.dedup();
    let names: Vec<String> = s_cols
        .iter()
        .map(|&c| s_schema.field(c).name().clone())
        .collect();
    let keys = LogicalPlan::project(
        cand.plan.clone(),
        s_cols.iter().map(|&c| Expr::Column(c)).collect(),
        &names,
    )?;
    let on: Vec<(Expr, Expr)> = pairs
        .iter()
        .filter_map(|&(g, c)| {
            let pos = s_cols.iter().position(|&x| x == c)?;
            Some((group.get(g)?.clone(), Expr::Column(pos)))
        })
        .collect();
    if let LogicalPlan::Aggregate { aggs, .. } = aggregate {
        if let Some((join, columns)) = outer_join_of(outer, cand.plan, input, aggs, group, &pairs) {
            // The aggregate's columns of x, where they are in the join.
            let moved = move |c: usize| columns[c];
            return Ok(Some(with_aggregate_input(grouped.clone(), &mut |_| {
                (join.clone(), Some(&moved))
            })));
        }
    }
    Ok(Some(with_aggregate_input(grouped.clone(), &mut |input| {
        let reduced = LogicalPlan::join(input, keys.clone(), JoinKind::Semi, on.clone(), None);
        (reduced, None)
    })))
}

/// The subtree of the outer side that is the aggregate's `input` joined
/// with the candidate `s` on exactly the key `pairs` (s joined by an inner
/// join, read by nothing else), when every aggregate ignores repeated rows
/// (see the module's note); with, per column of `input`, its column in the
/// subtree. A projection that only reorders the columns of the input (as
/// join ordering leaves one) is looked through.
fn outer_join_of(
    outer: &LogicalPlan,
    s: &LogicalPlan,
    input: &LogicalPlan,
    aggs: &[AggregateExpr],
    group: &[Expr],
    pairs: &[(usize, usize)],
) -> Option<(LogicalPlan, Vec<usize>)> {
    let ignores_repeats = |a: &AggregateExpr| match a.func {
        AggFunc::Min | AggFunc::Max => true,
        AggFunc::Avg => !a.distinct,
        _ => false,
    };
    if !aggs.iter().all(ignores_repeats) {
        return None;
    }
    // The input as a plan and, per input column, its column of that plan.
    let mut inputs = vec![(
        input,
        (0..input.schema().fields().len()).collect::<Vec<_>>(),
    )];
    if let LogicalPlan::Project {
        input: inner,
        exprs,
        ..
    } = input
    {
        let picked: Option<Vec<usize>> = exprs
            .iter()
            .map(|e| match e {
                Expr::Column(c) => Some(*c),
                _ => None,
            })
            .collect();
        if let Some(picked) = picked {
            inputs.push((inner.as_ref(), picked));
        }
    }
    let mut subtrees = Vec::new();
    holding(outer, s, &mut subtrees);
    for (x, picked) in &inputs {
        let wanted: Vec<(Expr, Expr)> = pairs
            .iter()
            .filter_map(|&(g, c)| {
                let key = group.get(g)?.clone().remap_columns(&|i| picked[i]);
                Some((key, Expr::Column(c)))
            })
            .collect();
        for t in &subtrees {
            let Some(r) = without(t, s) else { continue };
            let same_keys = r.on.len() == wanted.len() && wanted.iter().all(|w| r.on.contains(w));
            if same_keys && same_plan(&r.plan, x) {
                let at_t = |c: usize| if c >= r.at { c + r.width } else { c };
                return Some(((*t).clone(), picked.iter().map(|&c| at_t(c)).collect()));
            }
        }
    }
    None
}

/// The subtrees of `plan` that hold `s` (itself, not an equal copy),
/// innermost first.
fn holding<'a>(plan: &'a LogicalPlan, s: &LogicalPlan, out: &mut Vec<&'a LogicalPlan>) -> bool {
    if std::ptr::eq(plan, s) {
        return true;
    }
    let inside = plan
        .inputs()
        .into_iter()
        .any(|input| holding(input, s, out));
    if inside {
        out.push(plan);
    }
    inside
}

/// A plan with a relation taken out: the plan, where the relation's
/// columns were (`at`, `width` of them), and the keys it was joined on
/// (the other side's over the plan's columns, its own over its columns).
struct Removed {
    plan: LogicalPlan,
    at: usize,
    width: usize,
    on: Vec<(Expr, Expr)>,
}

/// `plan` without `s`, which an inner join with no other condition joins
/// in; only joins and filters may lie between, and none may read s's
/// columns. Taking s out of the kept side of a left, semi, anti or mark
/// join keeps the rest of the join as it was (s only drops rows there).
fn without(plan: &LogicalPlan, s: &LogicalPlan) -> Option<Removed> {
    match plan {
        LogicalPlan::Join {
            left,
            right,
            kind: JoinKind::Inner,
            on,
            filter: None,
            ..
        } if std::ptr::eq(right.as_ref(), s) || std::ptr::eq(left.as_ref(), s) => {
            let width = s.schema().fields().len();
            Some(if std::ptr::eq(right.as_ref(), s) {
                Removed {
                    plan: left.as_ref().clone(),
                    at: left.schema().fields().len(),
                    width,
                    on: on.clone(),
                }
            } else {
                Removed {
                    plan: right.as_ref().clone(),
                    at: 0,
                    width,
                    on: on.iter().map(|(sk, k)| (k.clone(), sk.clone())).collect(),
                }
            })
        }
        LogicalPlan::Join {
            left,
            right,
            kind,
            on,
            filter,
            ..
        } => {
            let nl = left.schema().fields().len();
            let in_left = matches!(
                kind,
                JoinKind::Inner | JoinKind::Left | JoinKind::Semi | JoinKind::Anti | JoinKind::Mark
            );
            let (r, base) = match without(left, s) {
                Some(r) if in_left => (r, 0),
                Some(_) => return None,
                None if *kind == JoinKind::Inner => (without(right, s)?, nl),
                None => return None,
            };
            // s's columns, as columns of the join's output
            let (from, to) = (base + r.at, base + r.at + r.width);
            let skip = |c: usize| if c >= to { c - r.width } else { c };
            let reads_s = |e: &Expr| {
                let mut cols = Vec::new();
                e.columns(&mut cols);
                cols.iter().any(|&c| c >= from && c < to)
            };
            let (left_skip, right_skip): (&dyn Fn(usize) -> usize, &dyn Fn(usize) -> usize) =
                if base == 0 {
                    (&skip, &|c| c)
                } else {
                    (&|c| c, &|c| skip(c + nl) - nl)
                };
            let mut keys = Vec::with_capacity(on.len());
            for (l, rk) in on {
                if reads_s(l) || reads_s(&rk.clone().remap_columns(&|c| c + nl)) {
                    return None;
                }
                keys.push((
                    l.clone().remap_columns(left_skip),
                    rk.clone().remap_columns(right_skip),
                ));
            }
            let filter = match filter {
                Some(f) if reads_s(f) => return None,
                Some(f) => Some(f.clone().remap_columns(&skip)),
                None => None,
            };
            let (new_left, new_right) = if base == 0 {
                (r.plan, right.as_ref().clone())
            } else {
                (left.as_ref().clone(), r.plan)
            };
            let on =
                r.on.into_iter()
                    .map(|(k, sk)| (k.remap_columns(&|c| c + base), sk))
                    .collect();
            Some(Removed {
                plan: LogicalPlan::join(new_left, new_right, *kind, keys, filter),
                at: from,
                width: r.width,
                on,
            })
        }
        LogicalPlan::Filter { input, predicate } => {
            let r = without(input, s)?;
            let (from, to) = (r.at, r.at + r.width);
            let mut cols = Vec::new();
            predicate.columns(&mut cols);
            if cols.iter().any(|&c| c >= from && c < to) {
                return None;
            }
            let predicate =
                predicate
                    .clone()
                    .remap_columns(&|c| if c >= to { c - r.width } else { c });
            Some(Removed {
                plan: LogicalPlan::Filter {
                    input: Box::new(r.plan),
                    predicate,
                },
                ..r
            })
        }
        _ => None,
    }
}

/// The aggregate under a chain of projections and filters, and for each of
/// the chain's output columns `cols` the group column it is (if it is one).
fn find_aggregate(
    plan: &LogicalPlan,
    cols: Vec<Option<usize>>,
) -> Option<(&LogicalPlan, Vec<Option<usize>>)> {
    match plan {
        LogicalPlan::Project { input, exprs, .. } => {
            let cols = cols
                .into_iter()
                .map(|c| match exprs.get(c?) {
                    Some(Expr::Column(b)) => Some(*b),
                    _ => None,
                })
                .collect();
            find_aggregate(input, cols)
        }
        // (a HAVING filter drops whole groups: the others keep their values)
        LogicalPlan::Filter { input, .. } => find_aggregate(input, cols),
        LogicalPlan::Aggregate { group, .. } => {
            let cols = cols
                .into_iter()
                .map(|c| c.filter(|&c| c < group.len()))
                .collect();
            Some((plan, cols))
        }
        _ => None,
    }
}

/// What replaces an aggregate's input, and where the columns the aggregate
/// reads are in it (None: where they were).
type NewInput<'a> = (LogicalPlan, Option<&'a dyn Fn(usize) -> usize>);

/// `plan` (the chain `find_aggregate` walked) with its aggregate's input
/// replaced by `new_input` of it.
fn with_aggregate_input<'a>(
    plan: LogicalPlan,
    new_input: &mut dyn FnMut(LogicalPlan) -> NewInput<'a>,
) -> LogicalPlan {
    match plan {
        LogicalPlan::Project {
            input,
            exprs,
            schema,
        } => LogicalPlan::Project {
            input: Box::new(with_aggregate_input(*input, new_input)),
            exprs,
            schema,
        },
        LogicalPlan::Filter { input, predicate } => LogicalPlan::Filter {
            input: Box::new(with_aggregate_input(*input, new_input)),
            predicate,
        },
        LogicalPlan::Aggregate {
            input,
            group,
            aggs,
            schema,
        } => {
            let (input, moved) = new_input(*input);
            let (group, aggs) = match moved {
                None => (group, aggs),
                Some(map) => (
                    group.into_iter().map(|g| g.remap_columns(map)).collect(),
                    aggs.into_iter()
                        .map(|mut a| {
                            a.arg = a.arg.map(|x| x.remap_columns(map));
                            a
                        })
                        .collect(),
                ),
            };
            LogicalPlan::Aggregate {
                input: Box::new(input),
                group,
                aggs,
                schema,
            }
        }
        other => other,
    }
}

/// Collects the subtrees of `plan` (itself included) that hold the values of
/// its output columns `cols`: walking down, each operator passed may only
/// drop or duplicate the rows below it and pass the key columns through.
fn trace<'a>(
    plan: &'a LogicalPlan,
    cols: Vec<Option<usize>>,
    depth: usize,
    out: &mut Vec<Candidate<'a>>,
) {
    if cols.iter().all(Option::is_none) {
        return;
    }
    out.push(Candidate {
        plan,
        cols: cols.clone(),
        depth,
    });
    match plan {
        LogicalPlan::Filter { input, .. }
        | LogicalPlan::Sort { input, .. }
        | LogicalPlan::Limit { input, .. } => trace(input, cols, depth + 1, out),
        LogicalPlan::Project { input, exprs, .. } => {
            let cols = cols
                .into_iter()
                .map(|c| match exprs.get(c?) {
                    Some(Expr::Column(b)) => Some(*b),
                    _ => None,
                })
                .collect();
            trace(input, cols, depth + 1, out);
        }
        // A group column's values are values of the input column.
        LogicalPlan::Aggregate { input, group, .. } => {
            let cols = cols
                .into_iter()
                .map(|c| match group.get(c?) {
                    Some(Expr::Column(b)) => Some(*b),
                    _ => None,
                })
                .collect();
            trace(input, cols, depth + 1, out);
        }
        LogicalPlan::Join {
            left,
            right,
            kind,
            on,
            ..
        } => trace_join(left, right, *kind, on, cols, depth, out),
        // (a column of a union comes from several inputs; a window's rows
        // see each other)
        LogicalPlan::Scan(_)
        | LogicalPlan::Values { .. }
        | LogicalPlan::Union { .. }
        | LogicalPlan::Series { .. }
        | LogicalPlan::Window { .. } => {}
    }
}

fn trace_join<'a>(
    left: &'a LogicalPlan,
    right: &'a LogicalPlan,
    kind: JoinKind,
    on: &[(Expr, Expr)],
    cols: Vec<Option<usize>>,
    depth: usize,
    out: &mut Vec<Candidate<'a>>,
) {
    let nl = left.schema().fields().len();
    // Where the join's output columns come from without NULL extension:
    // offset of the left / right input's columns in the output, if present.
    let (left_at, right_at) = match kind {
        JoinKind::Inner => (Some(0), Some(nl)),
        JoinKind::Left | JoinKind::Semi | JoinKind::Anti | JoinKind::Mark => (Some(0), None),
        JoinKind::Right => (None, Some(nl)),
        JoinKind::RightSemi | JoinKind::RightAnti => (None, Some(0)),
        JoinKind::Full => (None, None),
    };
    // Key pairs whose equality holds on every output row: inner joins, and
    // semi joins towards the side that is only matched against.
    let equal_left_right = matches!(kind, JoinKind::Inner | JoinKind::Semi | JoinKind::RightSemi);
    let (lschema, rschema) = (left.schema(), right.schema());
    let equal_pairs: Vec<(usize, usize)> = if equal_left_right {
        on.iter()
            .filter_map(|(l, r)| match (l, r) {
                (Expr::Column(a), Expr::Column(b))
                    if lschema.fields().get(*a).map(|f| f.data_type())
                        == rschema.fields().get(*b).map(|f| f.data_type()) =>
                {
                    Some((*a, *b))
                }
                _ => None,
            })
            .collect()
    } else {
        vec![]
    };
    let nr = rschema.fields().len();
    // Each key: its left column and its right column, where known.
    let sides: Vec<(Option<usize>, Option<usize>)> = cols
        .iter()
        .map(|c| {
            let Some(c) = *c else {
                return (None, None);
            };
            let l = left_at.and_then(|at| (c >= at && c < at + nl).then(|| c - at));
            let r = right_at.and_then(|at| (c >= at && c < at + nr).then(|| c - at));
            // Through an equality of keys to the other side.
            let l2 = l.or_else(|| {
                let r = r?;
                equal_pairs.iter().find(|p| p.1 == r).map(|p| p.0)
            });
            let r2 = r.or_else(|| {
                let l = l?;
                equal_pairs.iter().find(|p| p.0 == l).map(|p| p.1)
            });
            (l2, r2)
        })
        .collect();
    // The left side only where its rows reach the output or are matched
    // with equal keys (semi join's right side to a RIGHT SEMI join).
    let left_ok = left_at.is_some() || kind == JoinKind::RightSemi;
    let right_ok = right_at.is_some() || kind == JoinKind::Semi;
    if left_ok {
        trace(left, sides.iter().map(|s| s.0).collect(), depth + 1, out);
    }
    if right_ok {
        trace(right, sides.iter().map(|s| s.1).collect(), depth + 1, out);
    }
}

/// Rows read from base tables (and inline values) to compute `plan`.
fn scan_cost(plan: &LogicalPlan) -> f64 {
    match plan {
        LogicalPlan::Scan(_) | LogicalPlan::Values { .. } => estimate(plan).rows,
        other => other.inputs().into_iter().map(scan_cost).sum(),
    }
}

/// Whether `plan` keeps only some rows by position: computed again, it
/// might keep other ones.
fn has_limit(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::Limit { .. } | LogicalPlan::Sort { fetch: Some(_), .. } => true,
        other => other.inputs().into_iter().any(has_limit),
    }
}

#[cfg(test)]
mod tests {

    use datafusion_common::ScalarValue;

    use super::*;
    use crate::optimizer::test_plans::{col, table, values};
    use crate::plan::repeated::repeated_subplans;
    use crate::plan::BinaryOp;

    /// `c = 1`: keeps a twentieth of the rows by the estimates.
    fn eq1(c: usize) -> Expr {
        Expr::binary(BinaryOp::Eq, col(c), Expr::lit(ScalarValue::Int64(Some(1))))
    }

    fn filtered(plan: LogicalPlan) -> LogicalPlan {
        LogicalPlan::Filter {
            input: Box::new(plan),
            predicate: eq1(1),
        }
    }

    /// Project[sum AS value, key…](Aggregate(group=[keys], sum(t.x)) over
    /// T [t0…, x] of 2000 rows): a decorrelated subquery with `nkeys` keys.
    fn grouped(nkeys: usize) -> LogicalPlan {
        let mut names: Vec<String> = (0..nkeys).map(|i| format!("t{i}")).collect();
        names.push("x".into());
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let input = values(&refs, 2000);
        let group = (0..nkeys).map(col).collect();
        let aggs = vec![AggregateExpr {
            func: AggFunc::Sum,
            arg: Some(col(nkeys)),
            distinct: false,
            param: None,
        }];
        let mut agg_names: Vec<String> = (0..nkeys).map(|i| format!("g{i}")).collect();
        agg_names.push("s".into());
        let agg = LogicalPlan::aggregate(input, group, aggs, &agg_names).unwrap();
        let mut exprs = vec![col(nkeys)];
        exprs.extend((0..nkeys).map(col));
        let mut out_names = vec!["value".to_string()];
        out_names.extend((0..nkeys).map(|i| format!("key{i}")));
        LogicalPlan::project(agg, exprs, &out_names).unwrap()
    }

    /// outer LEFT JOIN grouped(1) ON outer.#key = key0
    fn left_join(outer: LogicalPlan, key: usize) -> LogicalPlan {
        LogicalPlan::join(
            outer,
            grouped(1),
            JoinKind::Left,
            vec![(col(key), col(1))],
            None,
        )
    }

    /// The text of the aggregate's input, if a semi join was put there.
    fn reduced_input(plan: &LogicalPlan) -> Option<String> {
        let text = plan.to_string();
        let agg_at = text.find("Aggregate:")?;
        let below = &text[agg_at..];
        below.find("SemiJoin").map(|_| below.to_string())
    }

    #[test]
    fn a_left_join_is_reduced_by_the_filtered_relation_of_the_outer_side() {
        // (L [lk, lx] 1000 rows ⋈ σ P [pk, pw] 100 rows) ⟕ grouped on pk
        let outer = LogicalPlan::join(
            values(&["lk", "lx"], 1000),
            filtered(values(&["pk", "pw"], 100)),
            JoinKind::Inner,
            vec![(col(0), col(0))],
            None,
        );
        let plan = left_join(outer, 2);
        let before = plan.schema();
        let out = reduce_grouped_joins(plan).unwrap();
        assert_eq!(out.schema(), before);
        let below = reduced_input(&out).unwrap_or_else(|| panic!("{out}"));
        // the filtered P alone, projected to its key: not L, not all of P
        assert!(below.contains("SemiJoin: t0 = pk"), "{out}");
        assert!(
            below.contains("Project: pk\n") && below.contains("Filter: (pw = 1)"),
            "{out}"
        );
        assert!(!below.contains("InnerJoin"), "{out}");
    }

    #[test]
    fn unselective_outer_keys_or_a_full_or_mark_join_leave_the_plan_alone() {
        let out = reduce_grouped_joins(left_join(values(&["k", "w"], 1000), 0)).unwrap();
        assert!(reduced_input(&out).is_none(), "{out}");
        for kind in [JoinKind::Full, JoinKind::Mark] {
            let plan = LogicalPlan::join(
                filtered(values(&["k", "w"], 100)),
                grouped(1),
                kind,
                vec![(col(0), col(1))],
                None,
            );
            let out = reduce_grouped_joins(plan).unwrap();
            assert!(reduced_input(&out).is_none(), "{out}");
        }
    }

    #[test]
    fn null_extended_keys_are_not_traced_nor_computed_ones_below_their_computation() {
        // the key from the null-extended side of a left join: P, the side
        // it comes from, is not traced (kept simple), L does not hold it
        let outer = LogicalPlan::join(
            values(&["lk", "lx"], 1000),
            filtered(values(&["pk", "pw"], 100)),
            JoinKind::Left,
            vec![(col(0), col(0))],
            None,
        );
        let out = reduce_grouped_joins(left_join(outer, 2)).unwrap();
        assert!(reduced_input(&out).is_none(), "{out}");
        // a key computed from a column: S may be the computation, never the
        // relation below it (whose values are not the key's)
        let computed = LogicalPlan::project(
            filtered(values(&["pk", "pw"], 100)),
            vec![Expr::binary(
                BinaryOp::Plus,
                col(0),
                Expr::lit(ScalarValue::Int64(Some(1))),
            )],
            &["pk1".into()],
        )
        .unwrap();
        let out = reduce_grouped_joins(left_join(computed, 0)).unwrap();
        let below = reduced_input(&out).unwrap_or_else(|| panic!("{out}"));
        assert!(below.contains("SemiJoin: t0 = pk1"), "{out}");
        assert!(below.contains("Project: (pk + 1) AS pk1"), "{out}");
    }

    #[test]
    fn a_limit_is_never_copied_but_the_relation_under_it_may_be() {
        let outer = LogicalPlan::Limit {
            input: Box::new(filtered(values(&["pk", "pw"], 100))),
            skip: 0,
            fetch: Some(3),
        };
        let out = reduce_grouped_joins(left_join(outer, 0)).unwrap();
        let below = reduced_input(&out).unwrap_or_else(|| panic!("{out}"));
        assert!(!below.contains("Limit"), "{out}");
        assert_eq!(out.to_string().matches("Limit").count(), 1, "{out}");
    }

    #[test]
    fn two_keys_use_the_key_a_semi_join_of_the_outer_side_filters() {
        // (PS [pk, sk] 1000 rows ⋉ σ P [p, pw] 100 rows on pk = p)
        //   ⟕ grouped(2) on pk = key0, sk = key1
        let outer = LogicalPlan::join(
            values(&["pk", "sk"], 1000),
            filtered(values(&["p", "pw"], 100)),
            JoinKind::Semi,
            vec![(col(0), col(0))],
            None,
        );
        let plan = LogicalPlan::join(
            outer,
            grouped(2),
            JoinKind::Left,
            vec![(col(0), col(1)), (col(1), col(2))],
            None,
        );
        let out = reduce_grouped_joins(plan).unwrap();
        let below = reduced_input(&out).unwrap_or_else(|| panic!("{out}"));
        assert!(below.contains("SemiJoin: t0 = p\n"), "{out}");
    }

    #[test]
    fn an_inner_join_with_the_aggregate_on_its_left_is_reduced_too() {
        let plan = LogicalPlan::join(
            grouped(1),
            filtered(values(&["k", "w"], 100)),
            JoinKind::Inner,
            vec![(col(1), col(0))],
            None,
        );
        let before = plan.schema();
        let out = reduce_grouped_joins(plan).unwrap();
        assert_eq!(out.schema(), before);
        let below = reduced_input(&out).unwrap_or_else(|| panic!("{out}"));
        assert!(below.contains("SemiJoin: t0 = k"), "{out}");
    }

    /// `outer` ⟕ (`func`(x.#`arg`) of `x` grouped by x.#`key`) on
    /// outer.#`outer_key` = the group key.
    fn with_grouped(
        outer: &LogicalPlan,
        outer_key: usize,
        x: LogicalPlan,
        key: usize,
        func: AggFunc,
        arg: usize,
    ) -> LogicalPlan {
        let agg = AggregateExpr {
            func,
            arg: Some(col(arg)),
            distinct: false,
            param: None,
        };
        let names = ["g".to_string(), "a".to_string()];
        let grouped = LogicalPlan::aggregate(x, vec![col(key)], vec![agg], &names).unwrap();
        let on = vec![(col(outer_key), col(0))];
        LogicalPlan::join(outer.clone(), grouped, JoinKind::Left, on, None)
    }

    /// Asserts that `out` computes `outer` twice (so, shared: once) and
    /// that its aggregate, the join's right input, reads the columns
    /// `group` and `arg` of it.
    fn assert_reads_outer(out: &LogicalPlan, outer: &LogicalPlan, group: usize, arg: usize) {
        let found = repeated_subplans(out);
        assert_eq!(found.len(), 1, "{out}");
        assert!(same_plan(found[0], outer), "{out}");
        let LogicalPlan::Join { right, .. } = out else {
            panic!("{out}")
        };
        let LogicalPlan::Aggregate {
            group: keys, aggs, ..
        } = right.as_ref()
        else {
            panic!("{out}")
        };
        assert_eq!(keys, &vec![col(group)], "{out}");
        assert_eq!(aggs[0].arg, Some(col(arg)), "{out}");
    }

    fn join_on_first(left: LogicalPlan, right: LogicalPlan) -> LogicalPlan {
        LogicalPlan::join(left, right, JoinKind::Inner, vec![(col(0), col(0))], None)
    }

    #[test]
    fn an_average_reads_the_outer_join_of_its_input_and_a_sum_does_not() {
        // (L [lk, lx] ⋈ σ P [pk, pw] on lk = pk) ⟕ (f(lx) of L by lk) on pk
        let l = table(&["lk", "lx"], 1_000_000, 0, 9_999);
        let outer = join_on_first(l.clone(), filtered(table(&["pk", "pw"], 1_000, 0, 999)));
        for func in [AggFunc::Avg, AggFunc::Min, AggFunc::Max] {
            let out = reduce_grouped_joins(with_grouped(&outer, 2, l.clone(), 0, func, 1)).unwrap();
            assert!(reduced_input(&out).is_none(), "{out}");
            assert_reads_outer(&out, &outer, 0, 1);
        }
        // a sum or count would count L's rows once per match in P
        for func in [AggFunc::Sum, AggFunc::Count] {
            let out = reduce_grouped_joins(with_grouped(&outer, 2, l.clone(), 0, func, 1)).unwrap();
            let below = reduced_input(&out).unwrap_or_else(|| panic!("{out}"));
            assert!(below.contains("SemiJoin: lk = pk"), "{out}");
        }
    }

    #[test]
    fn the_outer_join_is_found_around_the_reducing_relation_and_under_a_reordering() {
        // outer: (L [lk, lx] ⋈ σ P [pk, pw] on lk = pk) ⋈ R [rk, rw] on lx = rk
        // aggregate: min(rw) by lk of Project[rk, rw, lk, lx](L ⋈ R on lx = rk)
        let l = table(&["lk", "lx"], 1_000_000, 0, 9_999);
        let r = table(&["rk", "rw"], 1_000, 0, 999);
        let lp = join_on_first(l.clone(), filtered(table(&["pk", "pw"], 1_000, 0, 999)));
        let on_r = vec![(col(1), col(0))];
        let outer = LogicalPlan::join(lp, r.clone(), JoinKind::Inner, on_r.clone(), None);
        let lr = LogicalPlan::join(l, r, JoinKind::Inner, on_r, None);
        let names = ["rk", "rw", "lk", "lx"].map(String::from);
        let x = LogicalPlan::project(lr, vec![col(2), col(3), col(0), col(1)], &names).unwrap();
        let plan = with_grouped(&outer, 2, x, 2, AggFunc::Min, 1);
        let before = plan.schema();
        let out = reduce_grouped_joins(plan).unwrap();
        assert_eq!(out.schema(), before);
        // lk and rw, where they are in the outer join: columns 0 and 5
        assert_reads_outer(&out, &outer, 0, 5);
    }

    #[test]
    fn the_reducing_relation_may_be_the_left_input_of_the_outer_join() {
        // (σ P [pk, pw] ⋈ L [lk, lx] on pk = lk) ⟕ (avg(lx) of L by lk) on pk
        let l = table(&["lk", "lx"], 1_000_000, 0, 9_999);
        let outer = join_on_first(filtered(table(&["pk", "pw"], 1_000, 0, 999)), l.clone());
        let out = reduce_grouped_joins(with_grouped(&outer, 0, l, 0, AggFunc::Avg, 1)).unwrap();
        // lk and lx come after P's two columns
        assert_reads_outer(&out, &outer, 2, 3);
    }
}
