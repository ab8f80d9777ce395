//! Join ordering. A tree of inner joins (comma joins with their WHERE
//! conditions, or explicit JOIN … ON) is flattened into relations and
//! conditions; conditions on one relation are pushed onto it, equalities
//! between relations become join keys, and the joins are rebuilt greedily:
//! each time, the two connected parts whose join is estimated smallest are
//! joined, hashing the smaller side; the result may be bushy. A cross
//! product is made only where no condition connects what is left.

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

/// Whether two shrink factors are the same up to rounding: Q9's part
/// joined with lineitem and with partsupp both keep a tenth, which must not
/// be decided by the last bit of a division.
fn same_shrink(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

/// Equalities between columns of different relations that follow from
/// the others: from `p_partkey = l_partkey AND ps_partkey = l_partkey`
/// follows `p_partkey = ps_partkey`, which lets Q9 join part with partsupp
/// before either meets lineitem. Only plain columns of one type are
/// equated; the joins drop whichever of the equalities become redundant
/// (see `Equalities`).
fn implied_equalities(conditions: &[Expr], relations: &[Relation]) -> Vec<Expr> {
    let mut classes = Equalities::over(relations);
    let mut stated = BTreeSet::new();
    for c in conditions {
        if let Some((a, b)) = column_equality(c) {
            stated.insert((a.min(b), a.max(b)));
            if column_type(a, relations) == column_type(b, relations) {
                classes.union(a, b);
            }
        }
    }
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); classes.parent.len()];
    for &(a, b) in &stated {
        for x in [a, b] {
            let root = classes.find(x);
            if !members[root].contains(&x) {
                members[root].push(x);
            }
        }
    }
    let mut implied = Vec::new();
    for class in members.iter().filter(|m| m.len() > 2) {
        for (i, &a) in class.iter().enumerate() {
            for &b in &class[i + 1..] {
                let pair = (a.min(b), a.max(b));
                if owner_of(a, relations) != owner_of(b, relations) && !stated.contains(&pair) {
                    implied.push(Expr::binary(
                        BinaryOp::Eq,
                        Expr::Column(pair.0),
                        Expr::Column(pair.1),
                    ));
                }
            }
        }
    }
    implied
}

/// `(a, b)` for the condition `column a = column b`.
fn column_equality(e: &Expr) -> Option<(usize, usize)> {
    match e {
        Expr::Binary {
            op: BinaryOp::Eq,
            left,
            right,
        } => match (left.as_ref(), right.as_ref()) {
            (Expr::Column(a), Expr::Column(b)) if a != b => Some((*a, *b)),
            _ => None,
        },
        _ => None,
    }
}

fn column_type(col: usize, relations: &[Relation]) -> Option<arrow::datatypes::DataType> {
    let r = &relations[owner_of(col, relations)];
    let schema = r.plan.schema();
    schema
        .fields()
        .get(col - r.offset)
        .map(|f| f.data_type().clone())
}

/// Classes of columns known equal (a union-find over global columns).
#[derive(Clone)]
struct Equalities {
    parent: Vec<usize>,
}

impl Equalities {
    /// Every global column of `relations` in a class of its own.
    fn over(relations: &[Relation]) -> Self {
        let columns = relations
            .iter()
            .map(|r| r.offset + r.width)
            .max()
            .unwrap_or(0);
        Equalities {
            parent: (0..columns).collect(),
        }
    }

    fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }

    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        self.parent[ra] = rb;
    }

    /// Whether `e` equates two columns already known equal; if it equates
    /// two others, they are known equal from now on.
    fn redundant(&mut self, e: &Expr) -> bool {
        let Some((a, b)) = column_equality(e) else {
            return false;
        };
        if self.find(a) == self.find(b) {
            return true;
        }
        self.union(a, b);
        false
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
    /// Columns the joins made so far have equated.
    equal: Equalities,
}

impl JoinGraph {
    fn new(mut relations: Vec<Relation>, mut conditions: Vec<Expr>) -> Result<Self> {
        let owner = owner_of;
        let implied: Vec<Expr> = conditions
            .iter()
            .flat_map(|c| implied_filters(c, &relations))
            .collect();
        conditions.extend(implied);
        let implied = implied_equalities(&conditions, &relations);
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
            equal: Equalities::over(&relations),
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
        let mut parts: Vec<Joined> = (0..n).map(|r| self.take(r)).collect();
        // Greedy: of all pairs of parts a condition connects, join the one
        // whose join shrinks its larger side the most (output rows over the
        // larger input's; among equals, the fewer rows), until one part is
        // left. A join that filters goes first, wherever it is (Q5's
        // supplier, nation and region, Q3's orders and customer); one that
        // only widens a big side (a foreign key's table) comes late.
        while parts.len() > 1 {
            let mut best: Option<(f64, f64, usize, usize)> = None;
            for i in 0..parts.len() {
                for j in i + 1..parts.len() {
                    if !self
                        .conditions
                        .iter()
                        .any(|c| !c.applied && self.connects(c, &parts[i], &parts[j]))
                    {
                        continue;
                    }
                    let rows = self.output_if_joined(&parts[i], &parts[j]);
                    let larger = parts[i].estimate.rows.max(parts[j].estimate.rows);
                    let shrink = rows / larger.max(1.0);
                    let better = best.is_none_or(|(s, r, _, _)| {
                        if same_shrink(shrink, s) {
                            rows.total_cmp(&r).is_lt()
                        } else {
                            shrink < s
                        }
                    });
                    if better {
                        best = Some((shrink, rows, i, j));
                    }
                }
            }
            // Nothing connects what is left: a cross product of the two
            // smallest parts.
            let (i, j) = match best {
                Some((_, _, i, j)) => (i, j),
                None => {
                    let mut by_rows: Vec<usize> = (0..parts.len()).collect();
                    by_rows.sort_by(|&a, &b| {
                        parts[a].estimate.rows.total_cmp(&parts[b].estimate.rows)
                    });
                    (by_rows[0].min(by_rows[1]), by_rows[0].max(by_rows[1]))
                }
            };
            let b = parts.swap_remove(j);
            let a = parts.swap_remove(i);
            parts.push(self.join(a, b));
        }
        let mut current = parts
            .pop()
            .unwrap_or_else(|| unreachable!("an inner-join tree has relations"));
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

    /// Estimated rows of joining `a` and `b` now.
    fn output_if_joined(&self, a: &Joined, b: &Joined) -> f64 {
        let mut layout = a.layout.clone();
        layout.extend(b.layout.iter().copied());
        let nl = a.layout.len();
        let mut equal = self.equal.clone();
        let keys: Vec<(Expr, Expr)> = self
            .conditions
            .iter()
            .filter(|c| !c.applied && self.connects(c, a, b))
            .filter(|c| !equal.redundant(&c.expr))
            .filter_map(|c| {
                let local = c
                    .expr
                    .clone()
                    .remap_columns(&|g| layout.iter().position(|x| *x == g).unwrap_or(0));
                local.as_equi_key(nl)
            })
            .collect();
        if keys.is_empty() {
            return a.estimate.rows * b.estimate.rows;
        }
        join_rows(&a.plan, a.estimate, &b.plan, b.estimate, &keys)
    }

    /// Does `c` relate `a` to `b`: it reads both and nothing else?
    fn connects(&self, c: &Condition, a: &Joined, b: &Joined) -> bool {
        c.relations.iter().any(|x| a.relations.contains(x))
            && c.relations.iter().any(|x| b.relations.contains(x))
            && c.relations
                .iter()
                .all(|x| a.relations.contains(x) || b.relations.contains(x))
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
            if self.equal.redundant(&c.expr) {
                continue;
            }
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

#[cfg(test)]
mod tests {
    use datafusion_common::ScalarValue;

    use super::*;
    use crate::optimizer::test_plans::{col, table};

    fn eq(a: usize, b: usize) -> Expr {
        Expr::binary(BinaryOp::Eq, col(a), col(b))
    }

    /// The first columns of the scans under `plan`.
    fn scans(plan: &LogicalPlan, out: &mut Vec<String>) {
        if let LogicalPlan::Scan(s) = plan {
            out.push(s.schema.field(0).name().clone());
        }
        for input in plan.inputs() {
            scans(input, out);
        }
    }

    /// Whether some join under `plan` joins exactly the scans `names`.
    fn joins_exactly(plan: &LogicalPlan, names: &[&str]) -> bool {
        if let LogicalPlan::Join { .. } = plan {
            let mut found = Vec::new();
            scans(plan, &mut found);
            found.sort();
            if found == names {
                return true;
            }
        }
        plan.inputs().into_iter().any(|p| joins_exactly(p, names))
    }

    #[test]
    fn a_join_that_filters_goes_first_even_between_two_small_relations() {
        // fact F (6M rows) → dimension D (10K) → tiny S (25, one kept):
        // F ⋈ (D ⋈ σS), not (F ⋈ D) ⋈ σS, which would carry all of F
        // through two joins
        let f = table(&["fk", "fv"], 6_000_000, 1, 10_000);
        let d = table(&["dk", "dn"], 10_000, 1, 10_000);
        let s = table(&["sk", "sx"], 25, 1, 25);
        let cross = |a, b| LogicalPlan::join(a, b, JoinKind::Inner, vec![], None);
        let one = Expr::lit(ScalarValue::Int64(Some(1)));
        // columns: fk 0, fv 1, dk 2, dn 3, sk 4, sx 5
        let predicate = Expr::and_all(vec![
            eq(0, 2),
            eq(3, 4),
            Expr::binary(BinaryOp::Eq, col(5), one),
        ]);
        let plan = LogicalPlan::Filter {
            input: Box::new(cross(cross(f, d), s)),
            predicate,
        };
        let out = reorder_joins(plan).unwrap();
        assert!(joins_exactly(&out, &["dk", "sk"]), "{out}");
        assert!(!joins_exactly(&out, &["dk", "fk"]), "{out}");
    }

    #[test]
    fn a_join_that_only_widens_waits_for_the_one_that_filters() {
        // F ⋈ σO keeps few of F's rows; σO ⋈ C, though smaller, only
        // adds C's columns to σO (each O row has its C): F ⋈ σO first
        let f = table(&["fk", "fv"], 6_000_000, 1, 1_500_000);
        let o = table(&["ok", "oc"], 1_500_000, 1, 150_000);
        let c = table(&["ck", "cx"], 150_000, 1, 150_000);
        let filtered_o = LogicalPlan::Filter {
            input: Box::new(o),
            predicate: Expr::binary(BinaryOp::Eq, col(1), Expr::lit(ScalarValue::Int64(Some(7)))),
        };
        let cross = |a, b| LogicalPlan::join(a, b, JoinKind::Inner, vec![], None);
        // columns: fk 0, fv 1, ok 2, oc 3, ck 4, cx 5
        let plan = LogicalPlan::Filter {
            input: Box::new(cross(cross(f, filtered_o), c)),
            predicate: Expr::and_all(vec![eq(0, 2), eq(3, 4)]),
        };
        let out = reorder_joins(plan).unwrap();
        assert!(joins_exactly(&out, &["fk", "ok"]), "{out}");
    }

    #[test]
    fn equalities_through_a_third_relation_join_the_other_two_first() {
        // Q9's shape: σP.pk = L.lp and PS.psp = L.lp, PS.pss = L.ls. From
        // them follows σP.pk = PS.psp: σP ⋈ PS first (a few rows), then L
        // joins that on its two keys, the third equality being redundant.
        let l = table(&["lp", "ls"], 6_000_000, 1, 200_000);
        let p = table(&["pk", "px"], 200_000, 1, 200_000);
        let ps = table(&["psp", "pss"], 800_000, 1, 200_000);
        let filtered_p = LogicalPlan::Filter {
            input: Box::new(p),
            predicate: Expr::binary(BinaryOp::Eq, col(1), Expr::lit(ScalarValue::Int64(Some(7)))),
        };
        let cross = |a, b| LogicalPlan::join(a, b, JoinKind::Inner, vec![], None);
        // columns: lp 0, ls 1, pk 2, px 3, psp 4, pss 5
        let plan = LogicalPlan::Filter {
            input: Box::new(cross(cross(l, filtered_p), ps)),
            predicate: Expr::and_all(vec![eq(2, 0), eq(4, 0), eq(5, 1)]),
        };
        let out = reorder_joins(plan).unwrap();
        assert!(joins_exactly(&out, &["pk", "psp"]), "{out}");
        fn keys_of_top_join(plan: &LogicalPlan) -> Option<usize> {
            match plan {
                LogicalPlan::Join { on, .. } => Some(on.len()),
                _ => plan.inputs().into_iter().find_map(keys_of_top_join),
            }
        }
        assert_eq!(keys_of_top_join(&out), Some(2), "{out}");
    }

    #[test]
    fn columns_of_different_types_are_not_equated_through_a_third() {
        let relations = vec![
            Relation {
                plan: table(&["a"], 10, 1, 10),
                offset: 0,
                width: 1,
            },
            Relation {
                plan: table(&["b"], 10, 1, 10),
                offset: 1,
                width: 1,
            },
            Relation {
                plan: LogicalPlan::project(
                    table(&["c"], 10, 1, 10),
                    vec![col(0).cast(arrow::datatypes::DataType::Int32)],
                    &["c".to_string()],
                )
                .unwrap(),
                offset: 2,
                width: 1,
            },
        ];
        assert_eq!(
            implied_equalities(&[eq(0, 1), eq(1, 2)], &relations).len(),
            0
        );
        let same: Vec<Relation> = (0..3)
            .map(|r| Relation {
                plan: table(&["x"], 10, 1, 10),
                offset: r,
                width: 1,
            })
            .collect();
        assert_eq!(
            implied_equalities(&[eq(0, 1), eq(1, 2)], &same),
            vec![eq(0, 2)]
        );
    }
}
