//! Projection push-down: every node keeps only the columns someone above it
//! reads, so a scan decodes only the columns the query needs.
//!
//! A subplan that occurs more than once (TPC-H Q11's join in the query and
//! in its subquery) keeps the columns any of its occurrences reads, each
//! occurrence picking its own from them: the occurrences stay equal, and
//! the lowering computes them once (see `plan::repeated`).

use std::sync::Arc;

use arrow::datatypes::Schema;

use crate::error::Result;
use crate::plan::repeated::{repeated_subplans, same_plan};
use crate::plan::{Expr, JoinKind, LogicalPlan};

pub fn push_down_projections(plan: LogicalPlan) -> Result<LogicalPlan> {
    let all: Vec<usize> = (0..plan.schema().fields().len()).collect();
    let repeated: Vec<LogicalPlan> = repeated_subplans(&plan).into_iter().cloned().collect();
    let mut pruner = Pruner {
        needed: vec![vec![]; repeated.len()],
        repeated,
        collecting: true,
    };
    if !pruner.repeated.is_empty() {
        // A first pass learns what each occurrence of a repeated subplan
        // must give; the second prunes them all to what any must give.
        pruner.prune(plan.clone(), &all)?;
        pruner.collecting = false;
    }
    pruner.prune(plan, &all)
}

struct Pruner {
    /// The subplans that occur more than once, as they are before pruning.
    repeated: Vec<LogicalPlan>,
    /// Per repeated subplan, the columns some occurrence reads (sorted).
    needed: Vec<Vec<usize>>,
    /// Whether this is the pass that fills `needed`.
    collecting: bool,
}

/// Sorted, deduplicated column list.
fn normalize(mut cols: Vec<usize>) -> Vec<usize> {
    cols.sort_unstable();
    cols.dedup();
    cols
}

/// Where old column `i` lands once only `kept` remain.
fn position_in(kept: &[usize]) -> impl Fn(usize) -> usize + '_ {
    move |i| {
        kept.binary_search(&i)
            .unwrap_or_else(|_| unreachable!("column {i} was kept"))
    }
}

/// Columns `required` (sorted) of `plan`'s output, as a Project over `plan`
/// whose output is `have` (sorted, a superset).
fn select(plan: LogicalPlan, have: &[usize], required: &[usize]) -> Result<LogicalPlan> {
    if have == required {
        return Ok(plan);
    }
    let schema = plan.schema();
    let pos = position_in(have);
    let exprs: Vec<Expr> = required.iter().map(|&c| Expr::Column(pos(c))).collect();
    let names: Vec<String> = exprs
        .iter()
        .map(|e| match e {
            Expr::Column(i) => schema.field(*i).name().clone(),
            _ => unreachable!(),
        })
        .collect();
    LogicalPlan::project(plan, exprs, &names)
}

impl Pruner {
    /// Rewrites `plan` so that its output is exactly the old columns `required`
    /// (sorted), in that order.
    fn prune(&mut self, plan: LogicalPlan, required: &[usize]) -> Result<LogicalPlan> {
        if let Some(i) = self.repeated.iter().position(|r| same_plan(r, &plan)) {
            if self.collecting {
                let mut needed = std::mem::take(&mut self.needed[i]);
                needed.extend_from_slice(required);
                self.needed[i] = normalize(needed);
            } else if self.needed[i] != required {
                let needed = self.needed[i].clone();
                let pruned = self.prune_node(plan, &needed)?;
                return select(pruned, &needed, required);
            }
        }
        self.prune_node(plan, required)
    }

    fn prune_node(&mut self, plan: LogicalPlan, required: &[usize]) -> Result<LogicalPlan> {
        match plan {
            LogicalPlan::Scan(mut scan) => {
                let pos = position_in(required);
                scan.projection = required.iter().map(|&i| scan.projection[i]).collect();
                scan.filters = std::mem::take(&mut scan.filters)
                    .into_iter()
                    .map(|f| f.remap_columns(&pos))
                    .collect();
                scan.schema = Arc::new(scan.schema.project(required)?);
                Ok(LogicalPlan::Scan(scan))
            }
            LogicalPlan::Values { schema, batches } => {
                let schema = Arc::new(schema.project(required)?);
                let batches = batches
                    .iter()
                    .map(|b| Ok(b.project(required)?))
                    .collect::<Result<Vec<_>>>()?;
                Ok(LogicalPlan::Values { schema, batches })
            }
            LogicalPlan::Filter { input, predicate } => {
                let mut needed = required.to_vec();
                predicate.columns(&mut needed);
                let needed = normalize(needed);
                let input = self.prune(*input, &needed)?;
                let pos = position_in(&needed);
                let filtered = LogicalPlan::Filter {
                    input: Box::new(input),
                    predicate: predicate.remap_columns(&pos),
                };
                select(filtered, &needed, required)
            }
            LogicalPlan::Project {
                input,
                exprs,
                schema,
            } => {
                let kept: Vec<Expr> = required.iter().map(|&i| exprs[i].clone()).collect();
                let mut needed = Vec::new();
                kept.iter().for_each(|e| e.columns(&mut needed));
                let needed = normalize(needed);
                let input = self.prune(*input, &needed)?;
                let pos = position_in(&needed);
                let fields: Vec<_> = required.iter().map(|&i| schema.field(i).clone()).collect();
                Ok(LogicalPlan::Project {
                    input: Box::new(input),
                    exprs: kept.into_iter().map(|e| e.remap_columns(&pos)).collect(),
                    schema: Arc::new(Schema::new(fields)),
                })
            }
            LogicalPlan::Aggregate {
                input,
                group,
                aggs,
                schema,
            } => {
                let ng = group.len();
                // Group columns always stay (they define the rows); unused aggregates go.
                let kept_aggs: Vec<usize> = required
                    .iter()
                    .filter(|&&i| i >= ng)
                    .map(|&i| i - ng)
                    .collect();
                let mut needed = Vec::new();
                group.iter().for_each(|g| g.columns(&mut needed));
                for &j in &kept_aggs {
                    if let Some(a) = &aggs[j].arg {
                        a.columns(&mut needed);
                    }
                }
                let needed = normalize(needed);
                let input = self.prune(*input, &needed)?;
                let pos = position_in(&needed);
                let new_aggs: Vec<_> = kept_aggs
                    .iter()
                    .map(|&j| {
                        let mut a = aggs[j].clone();
                        a.arg = a.arg.map(|e| e.remap_columns(&pos));
                        a
                    })
                    .collect();
                let mut out_cols: Vec<usize> = (0..ng).collect();
                out_cols.extend(kept_aggs.iter().map(|j| j + ng));
                let fields: Vec<_> = out_cols.iter().map(|&i| schema.field(i).clone()).collect();
                let agg = LogicalPlan::Aggregate {
                    input: Box::new(input),
                    group: group.into_iter().map(|g| g.remap_columns(&pos)).collect(),
                    aggs: new_aggs,
                    schema: Arc::new(Schema::new(fields)),
                };
                select(agg, &out_cols, required)
            }
            LogicalPlan::Sort { input, keys, fetch } => {
                let mut needed = required.to_vec();
                keys.iter().for_each(|k| k.expr.columns(&mut needed));
                let needed = normalize(needed);
                let input = self.prune(*input, &needed)?;
                let pos = position_in(&needed);
                let sorted = LogicalPlan::Sort {
                    input: Box::new(input),
                    keys: keys
                        .into_iter()
                        .map(|mut k| {
                            k.expr = k.expr.remap_columns(&pos);
                            k
                        })
                        .collect(),
                    fetch,
                };
                select(sorted, &needed, required)
            }
            LogicalPlan::Window {
                input,
                exprs,
                schema,
            } => {
                // Every window expression stays (they are few); the input
                // keeps what is asked of it and what they read.
                let n_in = input.schema().fields().len();
                let mut needed: Vec<usize> =
                    required.iter().copied().filter(|&i| i < n_in).collect();
                exprs
                    .iter()
                    .flat_map(|w| w.exprs())
                    .for_each(|e| e.columns(&mut needed));
                let needed = normalize(needed);
                let input = self.prune(*input, &needed)?;
                let pos = position_in(&needed);
                let exprs: Vec<_> = exprs
                    .into_iter()
                    .map(|w| match Expr::Window(Box::new(w)).remap_columns(&pos) {
                        Expr::Window(w) => *w,
                        _ => unreachable!("remapping keeps the node"),
                    })
                    .collect();
                let names: Vec<String> = schema.fields()[n_in..]
                    .iter()
                    .map(|f| f.name().clone())
                    .collect();
                let window = LogicalPlan::window(input, exprs, &names)?;
                let mut have = needed.clone();
                have.extend(n_in..schema.fields().len());
                select(window, &have, required)
            }
            LogicalPlan::Series {
                input,
                args,
                inclusive,
                schema,
            } => {
                // the input keeps what is asked of it and what the
                // arguments read; the series' column stays
                let n_in = input.schema().fields().len();
                let mut needed: Vec<usize> =
                    required.iter().copied().filter(|&i| i < n_in).collect();
                args.iter().for_each(|e| e.columns(&mut needed));
                let needed = normalize(needed);
                let input = self.prune(*input, &needed)?;
                let pos = position_in(&needed);
                let args = args.into_iter().map(|e| e.remap_columns(&pos)).collect();
                let name = schema.field(n_in).name().clone();
                let series = LogicalPlan::series(input, args, inclusive, &name);
                let mut have = needed.clone();
                have.push(n_in);
                select(series, &have, required)
            }
            LogicalPlan::Limit { input, skip, fetch } => Ok(LogicalPlan::Limit {
                input: Box::new(self.prune(*input, required)?),
                skip,
                fetch,
            }),
            LogicalPlan::Union { inputs, schema } => Ok(LogicalPlan::Union {
                inputs: inputs
                    .into_iter()
                    .map(|p| self.prune(p, required))
                    .collect::<Result<_>>()?,
                schema: Arc::new(schema.project(required)?),
            }),
            LogicalPlan::Join {
                left,
                right,
                kind,
                on,
                filter,
                ..
            } => {
                let nl = left.schema().fields().len();
                let right_only = matches!(kind, JoinKind::RightSemi | JoinKind::RightAnti);
                let has_right_columns =
                    !matches!(kind, JoinKind::Semi | JoinKind::Anti | JoinKind::Mark);
                let mut left_needed: Vec<usize> = if right_only {
                    vec![]
                } else {
                    required.iter().copied().filter(|&i| i < nl).collect()
                };
                let mut right_needed: Vec<usize> = if right_only {
                    required.to_vec()
                } else if has_right_columns {
                    required
                        .iter()
                        .filter(|&&i| i >= nl)
                        .map(|&i| i - nl)
                        .collect()
                } else {
                    vec![]
                };
                for (l, r) in &on {
                    l.columns(&mut left_needed);
                    r.columns(&mut right_needed);
                }
                if let Some(f) = &filter {
                    let mut cols = Vec::new();
                    f.columns(&mut cols);
                    for c in cols {
                        if c < nl {
                            left_needed.push(c);
                        } else {
                            right_needed.push(c - nl);
                        }
                    }
                }
                let (left_needed, right_needed) = (normalize(left_needed), normalize(right_needed));
                let left = self.prune(*left, &left_needed)?;
                let right = self.prune(*right, &right_needed)?;
                let (pl, pr) = (position_in(&left_needed), position_in(&right_needed));
                let new_nl = left_needed.len();
                let on = on
                    .into_iter()
                    .map(|(l, r)| (l.remap_columns(&pl), r.remap_columns(&pr)))
                    .collect();
                let filter = filter.map(|f| {
                    f.remap_columns(&|c| if c < nl { pl(c) } else { new_nl + pr(c - nl) })
                });
                let join = LogicalPlan::join(left, right, kind, on, filter);
                if right_only {
                    return select(join, &right_needed, required);
                }
                let mut have = left_needed.clone();
                if has_right_columns {
                    have.extend(right_needed.iter().map(|c| c + nl));
                } else if kind == JoinKind::Mark {
                    have.push(nl);
                }
                select(join, &have, required)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optimizer::test_plans::{col, table};
    use crate::plan::{AggFunc, AggregateExpr};

    /// SELECT `column`, count(*) FROM `input` GROUP BY `column`
    fn counts_by(input: LogicalPlan, column: usize) -> LogicalPlan {
        let count = AggregateExpr {
            func: AggFunc::CountStar,
            arg: None,
            distinct: false,
            param: None,
        };
        let names = ["k".to_string(), "n".to_string()];
        LogicalPlan::aggregate(input, vec![col(column)], vec![count], &names).unwrap()
    }

    #[test]
    fn occurrences_of_a_repeated_join_keep_the_columns_any_of_them_reads() {
        // t ⋈ t grouped by b on one side and by c on the other
        let t = table(&["a", "b", "c", "d"], 1_000_000, 0, 9);
        let join = LogicalPlan::join(t.clone(), t, JoinKind::Inner, vec![(col(0), col(0))], None);
        let plan = LogicalPlan::join(
            counts_by(join.clone(), 1),
            counts_by(join, 2),
            JoinKind::Inner,
            vec![(col(0), col(0))],
            None,
        );
        let pruned = push_down_projections(plan).unwrap();
        let found = repeated_subplans(&pruned);
        assert_eq!(found.len(), 1, "the two joins stay equal");
        let LogicalPlan::Join { left, .. } = found[0] else {
            panic!("the join is what repeats, not {:?}", found[0]);
        };
        let LogicalPlan::Scan(scan) = left.as_ref() else {
            panic!("a scan under the join");
        };
        // a (the key), b and c (one occurrence's each), not d
        assert_eq!(scan.projection, vec![0, 1, 2]);
    }
}
