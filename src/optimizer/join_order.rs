//! Join ordering. A tree of inner joins (comma joins with their WHERE
//! conditions, or explicit JOIN … ON) is flattened into relations and
//! conditions; conditions on one relation are pushed onto it, equalities
//! between relations become join keys, and the joins are rebuilt greedily:
//! start from the relation with the most rows, then join, each time, the
//! connected relation estimated smallest, hashing the smaller side.
//! A cross product is made only where no condition connects what is left.

use std::collections::BTreeSet;

use super::cardinality::{estimate, join_rows, Estimate};
use super::map_inputs;
use super::outer_join_filters::add_filter;
use crate::error::Result;
use crate::plan::{BinaryOp, Expr, JoinKind, LogicalPlan};

pub fn reorder_joins(plan: LogicalPlan) -> Result<LogicalPlan> {
    if !is_inner_join_tree(&plan) {
        return map_inputs(plan, &mut reorder_joins);
    }
    let schema = plan.schema();
    let mut relations = Vec::new();
    let mut conditions = Vec::new();
    flatten(plan, 0, &mut relations, &mut conditions);
    for r in relations.iter_mut() {
        let leaf = std::mem::replace(&mut r.plan, empty_plan());
        r.plan = reorder_joins(leaf)?;
    }
    let mut graph = JoinGraph::new(relations, conditions)?;
    let joined = graph.build()?;
    // Back to the column order the parent expects.
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let exprs = (0..names.len())
        .map(|g| Expr::Column(joined.position(g)))
        .collect();
    LogicalPlan::project(joined.plan, exprs, &names)
}

fn is_inner_join_tree(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::Join {
            kind: JoinKind::Inner,
            ..
        } => true,
        LogicalPlan::Filter { input, .. } => matches!(
            input.as_ref(),
            LogicalPlan::Join {
                kind: JoinKind::Inner,
                ..
            }
        ),
        _ => false,
    }
}

/// A relation of the join graph and the first global column it provides.
struct Relation {
    plan: LogicalPlan,
    offset: usize,
    width: usize,
}

/// Collects the leaves of an inner-join tree and every condition in it,
/// with columns numbered globally (the tree's output order).
fn flatten(
    plan: LogicalPlan,
    offset: usize,
    relations: &mut Vec<Relation>,
    conditions: &mut Vec<Expr>,
) {
    let shift = |e: Expr, by: usize| e.remap_columns(&|i| i + by);
    match plan {
        LogicalPlan::Join {
            left,
            right,
            kind: JoinKind::Inner,
            on,
            filter,
            ..
        } => {
            let nl = left.schema().fields().len();
            flatten(*left, offset, relations, conditions);
            flatten(*right, offset + nl, relations, conditions);
            for (l, r) in on {
                conditions.push(Expr::binary(
                    BinaryOp::Eq,
                    shift(l, offset),
                    shift(r, offset + nl),
                ));
            }
            if let Some(f) = filter {
                conditions.extend(split_factored(shift(f, offset)));
            }
        }
        LogicalPlan::Filter { input, predicate }
            if matches!(
                input.as_ref(),
                LogicalPlan::Join {
                    kind: JoinKind::Inner,
                    ..
                }
            ) =>
        {
            flatten(*input, offset, relations, conditions);
            conditions.extend(split_factored(shift(predicate, offset)));
        }
        other => {
            let width = other.schema().fields().len();
            relations.push(Relation {
                plan: other,
                offset,
                width,
            });
        }
    }
}

/// A plan under construction and the global column each output column is.
struct Joined {
    plan: LogicalPlan,
    layout: Vec<usize>,
    relations: BTreeSet<usize>,
    estimate: Estimate,
}

impl Joined {
    fn position(&self, global: usize) -> usize {
        self.layout
            .iter()
            .position(|g| *g == global)
            .unwrap_or_else(|| unreachable!("column {global} is in the join"))
    }

    /// `e` (over global columns) over this plan's output.
    fn localize(&self, e: Expr) -> Expr {
        e.remap_columns(&|g| self.position(g))
    }
}

struct Condition {
    expr: Expr,
    relations: BTreeSet<usize>,
    applied: bool,
}

struct JoinGraph {
    relations: Vec<Option<Relation>>,
    conditions: Vec<Condition>,
}

impl JoinGraph {
    fn new(mut relations: Vec<Relation>, mut conditions: Vec<Expr>) -> Result<Self> {
        let owner = owner_of;
        let implied: Vec<Expr> = conditions
            .iter()
            .flat_map(|c| implied_filters(c, &relations))
            .collect();
        conditions.extend(implied);
        let mut kept = Vec::new();
        for c in conditions {
            let mut cols = Vec::new();
            c.columns(&mut cols);
            let rels: BTreeSet<usize> = cols.iter().map(|&col| owner(col, &relations)).collect();
            if rels.len() == 1 {
                // A condition on one relation filters it before any join.
                let r = *rels.iter().next().unwrap_or(&0);
                let rel = &mut relations[r];
                let offset = rel.offset;
                let local = c.remap_columns(&|g| g - offset);
                let input = std::mem::replace(&mut rel.plan, empty_plan());
                rel.plan = add_filter(input, local);
            } else {
                kept.push(Condition {
                    expr: c,
                    relations: rels,
                    applied: false,
                });
            }
        }
        Ok(JoinGraph {
            relations: relations.into_iter().map(Some).collect(),
            conditions: kept,
        })
    }

    fn take(&mut self, r: usize) -> Joined {
        let rel = self.relations[r]
            .take()
            .unwrap_or_else(|| unreachable!("relation {r} is joined once"));
        Joined {
            estimate: estimate(&rel.plan),
            layout: (rel.offset..rel.offset + rel.width).collect(),
            plan: rel.plan,
            relations: BTreeSet::from([r]),
        }
    }

    fn build(&mut self) -> Result<Joined> {
        let n = self.relations.len();
        let estimates: Vec<Estimate> = self
            .relations
            .iter()
            .map(|r| {
                r.as_ref().map_or(
                    Estimate {
                        rows: 0.0,
                        base: 0.0,
                    },
                    |r| estimate(&r.plan),
                )
            })
            .collect();
        // Start from the biggest relation: it is the one to stream, not hash.
        let first = (0..n)
            .max_by(|&a, &b| estimates[a].rows.total_cmp(&estimates[b].rows))
            .unwrap_or(0);
        let mut current = self.take(first);
        // Constant conditions (no columns) apply at the end.
        while current.relations.len() < n {
            let connected: Vec<usize> = (0..n)
                .filter(|r| self.relations[*r].is_some())
                .filter(|r| {
                    self.conditions
                        .iter()
                        .any(|c| !c.applied && self.connects(c, &current, *r))
                })
                .collect();
            let pool: Vec<usize> = if connected.is_empty() {
                (0..n).filter(|r| self.relations[*r].is_some()).collect()
            } else {
                connected
            };
            // The join that yields the fewest rows goes next; among equals
            // the smaller relation (the cheaper hash table).
            let next = pool
                .into_iter()
                .map(|r| (self.output_if_joined(&current, r), estimates[r].rows, r))
                .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)))
                .map_or(0, |(_, _, r)| r);
            let other = self.take(next);
            current = self.join(current, other);
        }
        // Whatever is left (constants, conditions over no relation).
        let rest: Vec<Expr> = self
            .conditions
            .iter_mut()
            .filter(|c| !c.applied)
            .map(|c| {
                c.applied = true;
                c.expr.clone()
            })
            .collect();
        if !rest.is_empty() {
            let predicate = current.localize(Expr::and_all(rest));
            current.plan = add_filter(current.plan, predicate);
        }
        Ok(current)
    }

    /// Estimated rows of joining relation `r` to `current` now.
    fn output_if_joined(&self, current: &Joined, r: usize) -> f64 {
        let Some(rel) = self.relations[r].as_ref() else {
            return f64::INFINITY;
        };
        let est = estimate(&rel.plan);
        let mut layout = current.layout.clone();
        layout.extend(rel.offset..rel.offset + rel.width);
        let nl = current.layout.len();
        let keys: Vec<(Expr, Expr)> = self
            .conditions
            .iter()
            .filter(|c| !c.applied && self.connects(c, current, r))
            .filter_map(|c| {
                let local = c
                    .expr
                    .clone()
                    .remap_columns(&|g| layout.iter().position(|x| *x == g).unwrap_or(0));
                local.as_equi_key(nl)
            })
            .collect();
        if keys.is_empty() {
            return current.estimate.rows * est.rows;
        }
        join_rows(&current.plan, current.estimate, &rel.plan, est, &keys)
    }

    /// Does `c` relate relation `r` to what `current` already joined?
    fn connects(&self, c: &Condition, current: &Joined, r: usize) -> bool {
        c.relations.contains(&r)
            && c.relations
                .iter()
                .all(|x| *x == r || current.relations.contains(x))
    }

    /// Joins `a` and `b` with every pending condition they now cover; the
    /// side estimated smaller becomes the build (right) side.
    fn join(&mut self, a: Joined, b: Joined) -> Joined {
        let (probe, build) = if b.estimate.rows <= a.estimate.rows {
            (a, b)
        } else {
            (b, a)
        };
        let all: BTreeSet<usize> = probe.relations.union(&build.relations).copied().collect();
        let mut layout = probe.layout.clone();
        layout.extend(build.layout.iter().copied());
        let nl = probe.layout.len();
        let mut keys = Vec::new();
        let mut residual = Vec::new();
        for c in self.conditions.iter_mut() {
            if c.applied || !c.relations.iter().all(|r| all.contains(r)) {
                continue;
            }
            c.applied = true;
            let local = c.expr.clone().remap_columns(&|g| {
                layout
                    .iter()
                    .position(|x| *x == g)
                    .unwrap_or_else(|| unreachable!("column {g} is in the join"))
            });
            match local.as_equi_key(nl) {
                Some(pair) => keys.push(pair),
                None => residual.push(local),
            }
        }
        let estimate = Estimate {
            rows: if keys.is_empty() {
                probe.estimate.rows * build.estimate.rows
            } else {
                join_rows(
                    &probe.plan,
                    probe.estimate,
                    &build.plan,
                    build.estimate,
                    &keys,
                )
            },
            base: probe.estimate.base.max(build.estimate.base),
        };
        let filter = (!residual.is_empty()).then(|| Expr::and_all(residual));
        Joined {
            plan: LogicalPlan::join(probe.plan, build.plan, JoinKind::Inner, keys, filter),
            layout,
            relations: all,
            estimate,
        }
    }
}

/// The conjuncts of `e`, with conditions common to every branch of an OR
/// taken out of it: `(a AND b) OR (a AND c)` gives `a` and `b OR c`, so that
/// a join key repeated in each branch is found.
fn split_factored(e: Expr) -> Vec<Expr> {
    let mut out = Vec::new();
    for c in e.split_conjunction() {
        let branches = split_disjunction(c.clone());
        if branches.len() < 2 {
            out.push(c);
            continue;
        }
        let branch_conjuncts: Vec<Vec<Expr>> = branches
            .into_iter()
            .map(|b| b.split_conjunction())
            .collect();
        let common: Vec<Expr> = branch_conjuncts[0]
            .iter()
            .filter(|x| branch_conjuncts[1..].iter().all(|b| b.contains(x)))
            .cloned()
            .collect();
        if common.is_empty() {
            out.push(c);
            continue;
        }
        let rest: Vec<Expr> = branch_conjuncts
            .into_iter()
            .map(|b| Expr::and_all(b.into_iter().filter(|x| !common.contains(x)).collect()))
            .collect();
        out.extend(common);
        if let Some(or) = rest
            .into_iter()
            .reduce(|a, b| Expr::binary(BinaryOp::Or, a, b))
        {
            out.push(or);
        }
    }
    out
}

/// The relation that holds global column `col`.
fn owner_of(col: usize, rels: &[Relation]) -> usize {
    rels.iter()
        .position(|r| col >= r.offset && col < r.offset + r.width)
        .unwrap_or(0)
}

/// Filters on single relations that an OR over several relations implies:
/// from `(n1 = 'FRANCE' AND n2 = 'GERMANY') OR (n1 = 'GERMANY' AND n2 =
/// 'FRANCE')` follows `n1 = 'FRANCE' OR n1 = 'GERMANY'` (and the same of
/// n2), which thins each nation, and so what joins it, before the joins;
/// the OR itself still applies after them. Only conjuncts that cannot
/// fail are taken, since they now run on rows the join would have dropped.
fn implied_filters(condition: &Expr, relations: &[Relation]) -> Vec<Expr> {
    let branches: Vec<Vec<Expr>> = split_disjunction(condition.clone())
        .into_iter()
        .map(|b| b.split_conjunction())
        .collect();
    if branches.len() < 2 {
        return vec![];
    }
    let relation_of = |e: &Expr| -> Option<usize> {
        let mut cols = Vec::new();
        e.columns(&mut cols);
        let first = owner_of(*cols.first()?, relations);
        cols.iter()
            .all(|&c| owner_of(c, relations) == first)
            .then_some(first)
    };
    let mut cols = Vec::new();
    condition.columns(&mut cols);
    let mut rels: Vec<usize> = cols.iter().map(|&c| owner_of(c, relations)).collect();
    rels.sort_unstable();
    rels.dedup();
    if rels.len() < 2 {
        return vec![];
    }
    rels.into_iter()
        .filter_map(|r| {
            branches
                .iter()
                .map(|conjuncts| {
                    let own: Vec<Expr> = conjuncts
                        .iter()
                        .filter(|c| relation_of(c) == Some(r) && cannot_fail(c))
                        .cloned()
                        .collect();
                    (!own.is_empty()).then(|| Expr::and_all(own))
                })
                .collect::<Option<Vec<Expr>>>()?
                .into_iter()
                .reduce(|a, b| Expr::binary(BinaryOp::Or, a, b))
        })
        .collect()
}

/// Comparisons, IN lists, LIKE and NULL tests of columns and literals,
/// joined by AND, OR and NOT: nothing that can raise an error.
fn cannot_fail(e: &Expr) -> bool {
    match e {
        Expr::Column(_) | Expr::Literal(_) => true,
        Expr::Binary { op, left, right } => {
            (op.is_comparison() || matches!(op, BinaryOp::And | BinaryOp::Or))
                && cannot_fail(left)
                && cannot_fail(right)
        }
        Expr::Not(x) | Expr::IsNull(x) | Expr::IsNotNull(x) => cannot_fail(x),
        Expr::InList { expr, list, .. } => cannot_fail(expr) && list.iter().all(cannot_fail),
        Expr::Like { expr, pattern, .. } => cannot_fail(expr) && cannot_fail(pattern),
        _ => false,
    }
}

fn split_disjunction(e: Expr) -> Vec<Expr> {
    match e {
        Expr::Binary {
            op: BinaryOp::Or,
            left,
            right,
        } => {
            let mut v = split_disjunction(*left);
            v.extend(split_disjunction(*right));
            v
        }
        other => vec![other],
    }
}

/// A placeholder while a plan is moved out of its slot.
fn empty_plan() -> LogicalPlan {
    LogicalPlan::Values {
        schema: std::sync::Arc::new(arrow::datatypes::Schema::empty()),
        batches: vec![],
    }
}
