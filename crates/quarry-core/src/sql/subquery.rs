//! Subqueries become joins (no subquery runs once per outer row):
//! - `EXISTS` / `NOT EXISTS` in WHERE: a semi / anti join on the correlation
//!   equalities, other correlated conditions as the join's filter;
//! - `x IN (q)` in WHERE: a semi join on x = q's column; `NOT IN`: an anti
//!   join when neither side can be NULL, else a mark join (NULL-aware);
//! - `IN` elsewhere: a mark join whose boolean column is the value;
//! - a scalar subquery: a left join with the subquery grouped by its
//!   correlation keys (none when uncorrelated: it has one row).

use std::cell::RefCell;
use std::collections::HashMap;

use arrow::datatypes::DataType;
use sqlparser::ast::{self, SetExpr, Spanned};

use super::binder::Binder;
use super::coerce::comparison_type;
use super::expr::{ExprBinder, OuterRef};
use super::lateral::OuterScope;
use super::location_of;
use super::scope::Scope;
use super::unnest::{
    join_dependent, map_plan_exprs, null_equal_keys, reads_outer, unnest, Dependent,
};
use crate::error::{Location, QuarryError, Result};
use crate::plan::{AggregateExpr, BinaryOp, Expr, JoinKind, LogicalPlan};

/// `x IN (q)` for a `q` that reads the outer query, as a scalar subquery
/// over q's rows (so the general unnesting computes it per outer value)
/// with SQL's three values: true when a row equals x; else NULL when a row
/// is NULL, or x is NULL and there are rows; else false.
fn in_as_aggregate(x: &ast::Expr, q: &ast::Query) -> Result<ast::Query> {
    let sql = format!(
        "SELECT CASE WHEN bool_or(__in.__value = ({x})) THEN TRUE \
         WHEN bool_or(__in.__value IS NULL) OR (({x}) IS NULL AND count(*) > 0) THEN NULL \
         ELSE FALSE END FROM ({q}) AS __in(__value)"
    );
    let dialect = sqlparser::dialect::GenericDialect {};
    sqlparser::parser::Parser::new(&dialect)
        .try_with_sql(&sql)
        .and_then(|mut p| p.parse_query())
        .map(|q| *q)
        .map_err(|e| QuarryError::plan(format!("internal error: IN as an aggregate: {e}")))
}

/// A subquery met in an expression, to be joined onto the plan the
/// expression is evaluated over.
#[derive(Debug)]
pub struct PendingSubquery {
    pub id: usize,
    /// Left (a scalar value) or Mark (`IN` as a value).
    pub kind: JoinKind,
    pub plan: LogicalPlan,
    /// Keys over the scope the expression was bound in ...
    pub outer_keys: Vec<Expr>,
    /// ... equal to these keys over `plan`'s output.
    pub inner_keys: Vec<Expr>,
    /// The column of `plan` holding the value (Left joins).
    pub value: usize,
    pub data_type: DataType,
    /// When no subquery row matches and the value is then not NULL
    /// (`count(*)` of no rows is 0, EXISTS is false): a column of `plan`
    /// that is never NULL on a match, and the value to use without one.
    pub if_missing: Option<(usize, datafusion_common::ScalarValue)>,
    /// Planned by the general unnesting: `plan` reads the outer query's
    /// columns anywhere and is computed per distinct value of them.
    pub dependent: Option<DependentShape>,
}

/// What a subquery planned by the general unnesting yields per outer value.
#[derive(Debug, Clone, Copy)]
pub enum DependentShape {
    /// A scalar value; `checked`: more than one row is an error.
    Scalar { checked: bool },
    /// Whether any row exists.
    Exists,
}

/// How a subquery reads its outer query (`Binder::bind_correlated`).
enum Correlated<'q> {
    No,
    /// The FROM and WHERE, their scope, the correlation, the SELECT.
    Plain(LogicalPlan, Scope, Correlation, &'q ast::Select),
    /// The whole subquery, reading outer columns anywhere.
    General(LogicalPlan),
}

/// A correlated condition split in two: equalities usable as join keys and
/// the rest.
struct Correlation {
    /// (over the outer query, over the subquery)
    keys: Vec<(Expr, Expr)>,
    /// Conditions with OuterColumn references left in.
    residual: Vec<Expr>,
}

fn has_outer(e: &Expr) -> bool {
    let mut found = false;
    e.visit(&mut |x| found |= matches!(x, Expr::OuterColumn { .. }));
    found
}

fn has_inner_column(e: &Expr) -> bool {
    let mut found = false;
    e.visit(&mut |x| found |= matches!(x, Expr::Column(_)));
    found
}

pub(super) fn has_subquery_ref(e: &Expr) -> bool {
    let mut found = false;
    e.visit(&mut |x| found |= matches!(x, Expr::SubqueryRef { .. }));
    found
}

/// The outer side of a correlation, as an expression over the outer query.
fn outer_to_columns(e: Expr) -> Expr {
    e.transform_up(&mut |x| {
        Ok(match x {
            Expr::OuterColumn { index, .. } => Expr::Column(index),
            other => other,
        })
    })
    .unwrap_or_else(|_| unreachable!("the rewrite cannot fail"))
}

/// A correlated condition as a filter over outer ++ inner columns.
fn as_join_filter(e: Expr, outer_width: usize) -> Expr {
    e.transform_up(&mut |x| {
        Ok(match x {
            Expr::OuterColumn { index, .. } => Expr::Column(index),
            Expr::Column(j) => Expr::Column(outer_width + j),
            other => other,
        })
    })
    .unwrap_or_else(|_| unreachable!("the rewrite cannot fail"))
}

/// The join filter of `x NOT IN (correlated subquery)` when either side may
/// be NULL, as an anti join: a row of the subquery rules the outer row out
/// when it equals `x`, or either is NULL (NOT IN is then NULL or false, and
/// WHERE keeps neither); no row of the subquery keeps it (TRUE). `lhs` reads
/// the outer row, `rhs` the subquery's (shifted past the outer's `width`
/// columns here).
fn null_aware_not_in(lhs: Expr, rhs: Expr, width: usize) -> Expr {
    let rhs = rhs.remap_columns(&|c| width + c);
    Expr::binary(
        BinaryOp::Or,
        Expr::binary(
            BinaryOp::Or,
            Expr::binary(BinaryOp::Eq, lhs.clone(), rhs.clone()),
            Expr::IsNull(Box::new(rhs)),
        ),
        Expr::IsNull(Box::new(lhs)),
    )
}

/// Whether a select item calls an aggregate or a window function (a
/// subquery with one gives a row per outer row however its WHERE matches).
fn calls_aggregate_or_window(item: &ast::SelectItem) -> bool {
    use std::ops::ControlFlow;
    ast::visit_expressions(item, |e| match e {
        ast::Expr::Function(f)
            if f.over.is_some()
                || super::expr::AGGREGATES
                    .contains(&f.name.to_string().to_lowercase().as_str()) =>
        {
            ControlFlow::Break(())
        }
        _ => ControlFlow::Continue(()),
    })
    .is_break()
}

fn split_correlation(conditions: Vec<Expr>) -> Correlation {
    let mut keys = Vec::new();
    let mut residual = Vec::new();
    for c in conditions {
        if let Expr::Binary {
            op: BinaryOp::Eq,
            left,
            right,
        } = &c
        {
            let pure_outer = |e: &Expr| has_outer(e) && !has_inner_column(e);
            let pure_inner = |e: &Expr| !has_outer(e) && has_inner_column(e);
            if pure_outer(left) && pure_inner(right) {
                keys.push((outer_to_columns((**left).clone()), (**right).clone()));
                continue;
            }
            if pure_inner(left) && pure_outer(right) {
                keys.push((outer_to_columns((**right).clone()), (**left).clone()));
                continue;
            }
        }
        residual.push(c);
    }
    Correlation { keys, residual }
}

/// The conjuncts of an AST predicate (`a AND (b AND c)` → a, b, c).
fn ast_conjuncts(e: &ast::Expr) -> Vec<&ast::Expr> {
    match e {
        ast::Expr::BinaryOp {
            left,
            op: ast::BinaryOperator::And,
            right,
        } => {
            let mut v = ast_conjuncts(left);
            v.extend(ast_conjuncts(right));
            v
        }
        ast::Expr::Nested(inner)
            if matches!(
                inner.as_ref(),
                ast::Expr::BinaryOp {
                    op: ast::BinaryOperator::And,
                    ..
                }
            ) =>
        {
            ast_conjuncts(inner)
        }
        other => vec![other],
    }
}

/// Join keys of equal type: both sides cast to the type they compare at.
fn typed_keys(
    pairs: Vec<(Expr, Expr)>,
    left: &LogicalPlan,
    right: &LogicalPlan,
    at: Option<Location>,
) -> Result<Vec<(Expr, Expr)>> {
    let (ls, rs) = (left.schema(), right.schema());
    pairs
        .into_iter()
        .map(|(l, r)| {
            let (lt, rt) = (l.data_type(&ls)?, r.data_type(&rs)?);
            let t = comparison_type(&l, &lt, &r, &rt, at)?;
            let l = if lt == t { l } else { l.cast(t.clone()) };
            let r = if rt == t { r } else { r.cast(t) };
            Ok((l, r))
        })
        .collect()
}

/// Keeps the first `width` columns of `plan` (dropping join helpers).
pub(super) fn keep_first(plan: LogicalPlan, width: usize) -> Result<LogicalPlan> {
    let schema = plan.schema();
    if schema.fields().len() == width {
        return Ok(plan);
    }
    let names: Vec<String> = schema.fields()[..width]
        .iter()
        .map(|f| f.name().clone())
        .collect();
    LogicalPlan::project(plan, (0..width).map(Expr::Column).collect(), &names)
}

/// Joins `pending` onto `plan`; returns the plan and, for each subquery,
/// the expression over the joined plan that gives its value.
pub fn apply_subqueries(
    mut plan: LogicalPlan,
    pending: Vec<PendingSubquery>,
) -> Result<(LogicalPlan, HashMap<usize, Expr>)> {
    let mut values = HashMap::new();
    for mut p in pending {
        let width = plan.schema().fields().len();
        if let Some(shape) = p.dependent {
            let (per_value, on) = per_outer_value(p.plan, shape, &plan)?;
            p.plan = per_value;
            plan = LogicalPlan::join(plan, p.plan, JoinKind::Left, on, None);
            let column = Expr::Column(width);
            let value = match p.if_missing {
                None => column,
                Some((_, missing)) => Expr::Function {
                    func: crate::plan::ScalarFunc::Coalesce,
                    args: vec![column, Expr::Literal(missing)],
                    data_type: p.data_type.clone(),
                },
            };
            values.insert(p.id, value);
            continue;
        }
        let on = typed_keys(
            p.outer_keys.into_iter().zip(p.inner_keys).collect(),
            &plan,
            &p.plan,
            None,
        )?;
        let value = if p.kind == JoinKind::Mark {
            Expr::Column(width)
        } else {
            let column = Expr::Column(width + p.value);
            match p.if_missing {
                None => column,
                Some((matched, missing)) => Expr::Case {
                    branches: vec![(
                        Expr::IsNull(Box::new(Expr::Column(width + matched))),
                        Expr::Literal(missing),
                    )],
                    else_expr: Some(Box::new(column)),
                    data_type: p.data_type.clone(),
                },
            }
        };
        plan = LogicalPlan::join(plan, p.plan, p.kind, on, None);
        values.insert(p.id, value);
    }
    Ok((plan, values))
}

/// A subquery that reads `outer`'s columns anywhere, computed per distinct
/// value of them: a plan of its value and those columns, and the keys that
/// join it to `outer` (NULLs equal).
fn per_outer_value(
    q: LogicalPlan,
    shape: DependentShape,
    outer: &LogicalPlan,
) -> Result<(LogicalPlan, Vec<(Expr, Expr)>)> {
    let d = Dependent::of(&q, outer)?
        .ok_or_else(|| QuarryError::plan("internal error: the subquery reads no outer column"))?;
    let k = d.outer.len();
    let wq = q.schema().fields().len();
    let per_d = unnest(q, &d)?;
    let d_names: Vec<String> = (0..k).map(|j| format!("__d{j}")).collect();
    let d_columns = |from: usize| (from..from + k).map(Expr::Column);
    // [value, D…]
    let shaped = match shape {
        DependentShape::Scalar { checked: false } => {
            let mut exprs = vec![Expr::Column(0)];
            exprs.extend(d_columns(wq));
            let mut names = vec!["__value".to_string()];
            names.extend(d_names.iter().cloned());
            LogicalPlan::project(per_d, exprs, &names)?
        }
        DependentShape::Scalar { checked: true } => {
            let in_schema = per_d.schema();
            let (checked, aggs) = single_row_check(Expr::Column(0));
            let group: Vec<Expr> = d_columns(wq).collect();
            let mut names = d_names.clone();
            names.extend(["__count".to_string(), "__min".to_string()]);
            let value = rewrite_after_aggregate(checked, &group, &aggs, &in_schema)?;
            let grouped = LogicalPlan::aggregate(per_d, group, aggs, &names)?;
            let value = fix_function_type(value, &grouped.schema())?;
            let mut exprs = vec![value];
            exprs.extend(d_columns(0));
            let mut out = vec!["__value".to_string()];
            out.extend(d_names.iter().cloned());
            LogicalPlan::project(grouped, exprs, &out)?
        }
        DependentShape::Exists => {
            let grouped = LogicalPlan::aggregate(per_d, d_columns(wq).collect(), vec![], &d_names)?;
            let mut exprs = vec![Expr::Literal(datafusion_common::ScalarValue::Boolean(
                Some(true),
            ))];
            exprs.extend(d_columns(0));
            let mut out = vec!["__present".to_string()];
            out.extend(d_names.iter().cloned());
            LogicalPlan::project(grouped, exprs, &out)?
        }
    };
    let pairs: Vec<(usize, usize)> = d
        .outer
        .iter()
        .enumerate()
        .map(|(j, &o)| (o, 1 + j))
        .collect();
    let on = null_equal_keys(&pairs, &outer.schema(), &shaped.schema())?;
    Ok((shaped, on))
}

fn outer_scope(outer: OuterRef<'_>) -> std::sync::Arc<OuterScope> {
    std::sync::Arc::new(OuterScope {
        scope: outer.scope.clone(),
        schema: std::sync::Arc::new(outer.schema.clone()),
    })
}

/// EXISTS as a value, planned by the general unnesting (false where no
/// row exists).
fn exists_general(plan: LogicalPlan, id: usize) -> PendingSubquery {
    PendingSubquery {
        id,
        kind: JoinKind::Left,
        plan,
        outer_keys: vec![],
        inner_keys: vec![],
        value: 0,
        data_type: DataType::Boolean,
        if_missing: Some((0, datafusion_common::ScalarValue::Boolean(Some(false)))),
        dependent: Some(DependentShape::Exists),
    }
}

/// A scalar subquery planned by the general unnesting.
fn scalar_general(plan: LogicalPlan, id: usize, at: Option<Location>) -> Result<PendingSubquery> {
    let schema = plan.schema();
    if schema.fields().len() != 1 {
        return Err(QuarryError::plan_at(
            "a scalar subquery must return one column",
            at,
        ));
    }
    let checked = !at_most_one_by_shape(&plan);
    Ok(scalar_pending(
        plan,
        id,
        Some(DependentShape::Scalar { checked }),
    ))
}

/// A scalar subquery of one column to be left-joined (uncorrelated, or
/// per outer value with `dependent`).
fn scalar_pending(
    plan: LogicalPlan,
    id: usize,
    dependent: Option<DependentShape>,
) -> PendingSubquery {
    PendingSubquery {
        id,
        kind: JoinKind::Left,
        data_type: plan.schema().field(0).data_type().clone(),
        plan,
        outer_keys: vec![],
        inner_keys: vec![],
        value: 0,
        if_missing: None,
        dependent,
    }
}

/// Whether `plan` yields at most one row by its shape (an aggregate without
/// GROUP BY, LIMIT 1).
fn at_most_one_by_shape(plan: &LogicalPlan) -> bool {
    let mut p = plan;
    loop {
        match p {
            LogicalPlan::Aggregate { group, .. } => return group.is_empty(),
            LogicalPlan::Limit { fetch: Some(f), .. } if *f <= 1 => return true,
            LogicalPlan::Project { input, .. }
            | LogicalPlan::Filter { input, .. }
            | LogicalPlan::Sort { input, .. }
            | LogicalPlan::Limit { input, .. } => p = input,
            _ => return false,
        }
    }
}

/// Replaces subquery placeholders by the values their joins produced.
pub fn resolve_subquery_refs(e: Expr, values: &HashMap<usize, Expr>) -> Result<Expr> {
    e.transform_up(&mut |x| match x {
        Expr::SubqueryRef { id, .. } => values
            .get(&id)
            .cloned()
            .ok_or_else(|| QuarryError::plan("internal error: a subquery was not planned")),
        other => Ok(other),
    })
}

/// `e` with the placeholders of the subqueries in `values` replaced (the
/// others stay, to be joined later).
pub fn resolve_some_subquery_refs(e: Expr, values: &HashMap<usize, Expr>) -> Result<Expr> {
    e.transform_up(&mut |x| match x {
        Expr::SubqueryRef { id, .. } if values.contains_key(&id) => Ok(values[&id].clone()),
        other => Ok(other),
    })
}

/// Counts rows next to the value so that more than one row per group is
/// an error: `value` becomes `assert_single_row(count(*), min(value))`.
fn single_row_check(value: Expr) -> (Expr, Vec<AggregateExpr>) {
    let count = AggregateExpr {
        func: crate::plan::AggFunc::CountStar,
        arg: None,
        distinct: false,
        param: None,
    };
    let min = AggregateExpr {
        func: crate::plan::AggFunc::Min,
        arg: Some(value),
        distinct: false,
        param: None,
    };
    let checked = Expr::Function {
        func: crate::plan::ScalarFunc::AssertSingleRow,
        args: vec![
            Expr::Aggregate(Box::new(count.clone())),
            Expr::Aggregate(Box::new(min.clone())),
        ],
        data_type: DataType::Null,
    };
    (checked, vec![count, min])
}

/// An uncorrelated scalar subquery, made to fail when it yields more than
/// one row (unless its shape already guarantees at most one).
fn at_most_one_row(plan: LogicalPlan) -> Result<LogicalPlan> {
    if at_most_one_by_shape(&plan) {
        return Ok(plan);
    }
    let schema = plan.schema();
    let name = schema.field(0).name().clone();
    let (checked, aggs) = single_row_check(Expr::Column(0));
    let names = vec!["__count".to_string(), "__min".to_string()];
    let grouped = LogicalPlan::aggregate(plan, vec![], aggs.clone(), &names)?;
    let grouped_schema = grouped.schema();
    let value = rewrite_after_aggregate(checked, &[], &aggs, &schema)?;
    let value = fix_function_type(value, &grouped_schema)?;
    LogicalPlan::project(grouped, vec![value], &[name])
}

/// Sets the result type of `assert_single_row` from its value argument.
fn fix_function_type(e: Expr, schema: &arrow::datatypes::Schema) -> Result<Expr> {
    e.transform_up(&mut |x| match x {
        Expr::Function {
            func: crate::plan::ScalarFunc::AssertSingleRow,
            args,
            ..
        } => {
            let data_type = args[1].data_type(schema)?;
            Ok(Expr::Function {
                func: crate::plan::ScalarFunc::AssertSingleRow,
                args,
                data_type,
            })
        }
        other => Ok(other),
    })
}

/// The value of a subquery's SELECT expression over no rows, when that is
/// not NULL (`count(*)` is 0; sums and the like are NULL).
fn value_over_no_rows(
    value: &Expr,
    schema: &arrow::datatypes::Schema,
) -> Result<Option<datafusion_common::ScalarValue>> {
    let empty = value.clone().transform_down(&mut |x| match x {
        Expr::Aggregate(a) => {
            let t = a.data_type(schema)?;
            let v = if a.func.is_count() {
                datafusion_common::ScalarValue::Int64(Some(0))
            } else {
                datafusion_common::ScalarValue::try_from(&t)?
            };
            Ok(Some(Expr::Literal(v)))
        }
        _ => Ok(None),
    })?;
    match crate::optimizer::fold_expr(empty)? {
        Expr::Literal(v) if !v.is_null() => Ok(Some(v)),
        _ => Ok(None),
    }
}

/// Replaces aggregate calls and GROUP BY expressions by the columns of the
/// Aggregate node (group columns first); any other column is an error.
pub fn rewrite_after_aggregate(
    e: Expr,
    group: &[Expr],
    aggs: &[AggregateExpr],
    in_schema: &arrow::datatypes::Schema,
) -> Result<Expr> {
    let ng = group.len();
    e.transform_down(&mut |x| {
        if let Some(i) = group.iter().position(|g| g == x) {
            return Ok(Some(Expr::Column(i)));
        }
        if let Expr::Aggregate(a) = x {
            let j = aggs
                .iter()
                .position(|b| b == a.as_ref())
                .ok_or_else(|| QuarryError::plan("internal error: unknown aggregate"))?;
            return Ok(Some(Expr::Column(ng + j)));
        }
        if let Expr::Column(c) = x {
            return Err(QuarryError::plan(format!(
                "column '{}' must appear in the GROUP BY clause or be used in an aggregate function",
                in_schema.field(*c).name()
            )));
        }
        Ok(None)
    })
}

/// The distinct aggregate calls in `exprs`, in order of appearance.
pub fn collect_aggregates<'e>(exprs: impl Iterator<Item = &'e Expr>) -> Vec<AggregateExpr> {
    let mut aggs: Vec<AggregateExpr> = Vec::new();
    for e in exprs {
        e.visit(&mut |x| {
            if let Expr::Aggregate(a) = x {
                if !aggs.contains(a) {
                    aggs.push((**a).clone());
                }
            }
        });
    }
    aggs
}

impl Binder<'_> {
    fn next_id(&self) -> usize {
        let id = self.next_subquery.get();
        self.next_subquery.set(id + 1);
        id
    }

    /// Applies a WHERE clause to `plan` (whose columns `scope` names). With
    /// `outer`, conditions that read the enclosing query are returned
    /// instead of applied, for the caller to turn into join conditions.
    pub(super) fn bind_where(
        &self,
        plan: LogicalPlan,
        scope: &Scope,
        predicate: &ast::Expr,
        outer: Option<OuterRef<'_>>,
    ) -> Result<(LogicalPlan, Vec<Expr>)> {
        let schema = plan.schema();
        let width = schema.fields().len();
        let eb = ExprBinder {
            subqueries: Some(self),
            outer,
            ..ExprBinder::new(scope, &schema)
        };
        let mut plain = Vec::new();
        let mut after_joins = Vec::new();
        let mut correlated = Vec::new();
        let mut semi = Vec::new();
        for c in ast_conjuncts(predicate) {
            match c {
                ast::Expr::Exists { .. } | ast::Expr::InSubquery { .. } => semi.push(c),
                _ => {
                    let e = eb.bind_predicate(c, "WHERE")?;
                    if has_outer(&e) {
                        if has_subquery_ref(&e) {
                            return Err(QuarryError::plan_at(
                                "a correlated condition may not contain another subquery",
                                location_of(c.span()),
                            ));
                        }
                        correlated.push(e);
                    } else if has_subquery_ref(&e) {
                        after_joins.push(e);
                    } else {
                        plain.push(e);
                    }
                }
            }
        }
        let mut plan = if plain.is_empty() {
            plan
        } else {
            LogicalPlan::Filter {
                input: Box::new(plan),
                predicate: Expr::and_all(plain),
            }
        };
        for c in semi {
            plan = self.apply_semi(plan, scope, c)?;
        }
        let (mut plan, columns) = apply_subqueries(plan, eb.pending.into_inner())?;
        if !after_joins.is_empty() {
            let predicate = resolve_subquery_refs(Expr::and_all(after_joins), &columns)?;
            plan = LogicalPlan::Filter {
                input: Box::new(plan),
                predicate,
            };
        }
        Ok((keep_first(plan, width)?, correlated))
    }

    /// `[NOT] EXISTS (q)` or `x [NOT] IN (q)` as a WHERE condition.
    fn apply_semi(
        &self,
        plan: LogicalPlan,
        scope: &Scope,
        condition: &ast::Expr,
    ) -> Result<LogicalPlan> {
        // Its outer query is this one, not a LATERAL's left side.
        self.with_correlated(None, || self.bind_semi(plan, scope, condition))
    }

    fn bind_semi(
        &self,
        plan: LogicalPlan,
        scope: &Scope,
        condition: &ast::Expr,
    ) -> Result<LogicalPlan> {
        let at = location_of(condition.span());
        let schema = plan.schema();
        let width = schema.fields().len();
        let outer = OuterRef {
            scope,
            schema: &schema,
        };
        match condition {
            ast::Expr::Exists { subquery, negated } => {
                let kind = if *negated {
                    JoinKind::Anti
                } else {
                    JoinKind::Semi
                };
                let (sub, correlation) = match self.bind_correlated(subquery, outer, at)? {
                    Correlated::No => {
                        // Uncorrelated: one row of the subquery decides for all.
                        let sub = self.bind_query(subquery)?.plan;
                        return Ok(LogicalPlan::join(plan, sub, kind, vec![], None));
                    }
                    Correlated::General(sub) => {
                        return join_dependent(plan, sub, kind, vec![], None);
                    }
                    Correlated::Plain(sub, _, correlation, _) => (sub, correlation),
                };
                let on = typed_keys(correlation.keys, &plan, &sub, at)?;
                let filter = (!correlation.residual.is_empty())
                    .then(|| as_join_filter(Expr::and_all(correlation.residual), width));
                Ok(LogicalPlan::join(plan, sub, kind, on, filter))
            }
            ast::Expr::InSubquery {
                expr,
                subquery,
                negated,
            } => {
                let lhs = ExprBinder::new(scope, &schema).bind(expr)?;
                let lhs_nullable = lhs.nullable(&schema);
                let correlated = self.bind_correlated(subquery, outer, at)?;
                if let Correlated::General(sub) = correlated {
                    let sub_schema = sub.schema();
                    if sub_schema.fields().len() != 1 {
                        return Err(QuarryError::plan_at(
                            "the subquery of IN must return one column",
                            at,
                        ));
                    }
                    if *negated && (lhs_nullable || sub_schema.field(0).is_nullable()) {
                        let [(l, r)] = typed_keys(vec![(lhs, Expr::Column(0))], &plan, &sub, at)?
                            .try_into()
                            .map_err(|_| QuarryError::plan("internal error: one key pair"))?;
                        let filter = null_aware_not_in(l, r, width);
                        return join_dependent(plan, sub, JoinKind::Anti, vec![], Some(filter));
                    }
                    let on = typed_keys(vec![(lhs, Expr::Column(0))], &plan, &sub, at)?;
                    let kind = if *negated {
                        JoinKind::Anti
                    } else {
                        JoinKind::Semi
                    };
                    return join_dependent(plan, sub, kind, on, None);
                }
                if let Correlated::Plain(sub, sub_scope, correlation, select) = correlated {
                    // Correlated: match on the IN value and the correlation keys.
                    let item = match select.projection.as_slice() {
                        [ast::SelectItem::UnnamedExpr(e)]
                        | [ast::SelectItem::ExprWithAlias { expr: e, .. }] => e,
                        _ => {
                            return Err(QuarryError::plan_at(
                                "the subquery of IN must return one column",
                                at,
                            ))
                        }
                    };
                    let sub_schema = sub.schema();
                    let value = ExprBinder::new(&sub_scope, &sub_schema).bind(item)?;
                    if *negated && (lhs_nullable || value.nullable(&sub_schema)) {
                        // Matched on the correlation keys only; the IN value
                        // goes in the filter, NULL-aware.
                        let [(l, r)] = typed_keys(vec![(lhs, value)], &plan, &sub, at)?
                            .try_into()
                            .map_err(|_| QuarryError::plan("internal error: one key pair"))?;
                        let on = typed_keys(correlation.keys, &plan, &sub, at)?;
                        let mut filter = null_aware_not_in(l, r, width);
                        if !correlation.residual.is_empty() {
                            let residual =
                                as_join_filter(Expr::and_all(correlation.residual), width);
                            filter = Expr::and_all(vec![residual, filter]);
                        }
                        return Ok(LogicalPlan::join(
                            plan,
                            sub,
                            JoinKind::Anti,
                            on,
                            Some(filter),
                        ));
                    }
                    let mut pairs = vec![(lhs, value)];
                    pairs.extend(correlation.keys);
                    let on = typed_keys(pairs, &plan, &sub, at)?;
                    let filter = (!correlation.residual.is_empty())
                        .then(|| as_join_filter(Expr::and_all(correlation.residual), width));
                    let kind = if *negated {
                        JoinKind::Anti
                    } else {
                        JoinKind::Semi
                    };
                    return Ok(LogicalPlan::join(plan, sub, kind, on, filter));
                }
                let sub = self.bind_single_column(subquery, at)?;
                let sub_schema = sub.schema();
                let rhs_nullable = sub_schema.field(0).is_nullable();
                let on = typed_keys(vec![(lhs, Expr::Column(0))], &plan, &sub, at)?;
                if !negated {
                    return Ok(LogicalPlan::join(plan, sub, JoinKind::Semi, on, None));
                }
                if !lhs_nullable && !rhs_nullable {
                    return Ok(LogicalPlan::join(plan, sub, JoinKind::Anti, on, None));
                }
                // NOT IN with NULLs about: keep rows whose mark is false.
                let marked = LogicalPlan::join(plan, sub, JoinKind::Mark, on, None);
                let filtered = LogicalPlan::Filter {
                    input: Box::new(marked),
                    predicate: Expr::binary(
                        BinaryOp::Eq,
                        Expr::Column(width),
                        Expr::Literal(datafusion_common::ScalarValue::Boolean(Some(false))),
                    ),
                };
                keep_first(filtered, width)
            }
            _ => Err(QuarryError::plan_at(
                "internal error: not a subquery condition",
                at,
            )),
        }
    }

    /// An uncorrelated subquery of exactly one column.
    fn bind_single_column(&self, q: &ast::Query, at: Option<Location>) -> Result<LogicalPlan> {
        let bound = self.bind_query(q)?;
        let n = bound.plan.schema().fields().len();
        if n != 1 {
            return Err(QuarryError::plan_at(
                format!("the subquery of IN must return one column, not {n}"),
                at,
            ));
        }
        Ok(bound.plan)
    }

    /// How a subquery in an expression over `outer` is planned: the FROM
    /// and WHERE of a plain SELECT whose WHERE reads `outer` by equalities
    /// and other conditions (the fast path), the whole subquery when it reads
    /// `outer` elsewhere or has GROUP BY, HAVING, DISTINCT or LIMIT (the
    /// general unnesting), or nothing when it does not read `outer` (then
    /// the caller binds it as a whole).
    fn bind_correlated<'q>(
        &self,
        q: &'q ast::Query,
        outer: OuterRef<'_>,
        _at: Option<Location>,
    ) -> Result<Correlated<'q>> {
        let select = match q.body.as_ref() {
            SetExpr::Select(s) if q.with.is_none() && !self.carries_from(outer.scope) => s,
            _ => return self.general_or_not(q, outer),
        };
        let from = self.bind_from_reading(&select.from, outer)?;
        if reads_outer(&from.plan) {
            // a derived table in FROM reads the outer query
            return self.general_or_not(q, outer);
        }
        let (plan, correlated) = match &select.selection {
            Some(w) => self.bind_where(from.plan, &from.scope, w, Some(outer))?,
            None => (from.plan, vec![]),
        };
        let plain_select = matches!(&select.group_by, ast::GroupByExpr::Expressions(g, _) if g.is_empty())
            && select.having.is_none()
            && select.distinct.is_none()
            && q.limit_clause.is_none()
            && !select.projection.iter().any(calls_aggregate_or_window);
        if correlated.is_empty() || !plain_select {
            return self.general_or_not(q, outer);
        }
        Ok(Correlated::Plain(
            plan,
            from.scope,
            split_correlation(correlated),
            select,
        ))
    }

    /// `q` bound with `outer`'s columns readable anywhere in it.
    fn bind_with_outer(&self, q: &ast::Query, outer: OuterRef<'_>) -> Result<LogicalPlan> {
        Ok(self
            .with_correlated(Some(outer_scope(outer)), || self.bind_query(q))?
            .plan)
    }

    /// A subquery's FROM, whose derived tables may read `outer`.
    fn bind_from_reading(
        &self,
        from: &[ast::TableWithJoins],
        outer: OuterRef<'_>,
    ) -> Result<super::binder::Bound> {
        self.with_correlated(Some(outer_scope(outer)), || self.bind_from(from))
    }

    /// `q` bound with `outer`'s columns readable anywhere in it, when it
    /// reads them.
    fn general_or_not<'q>(&self, q: &ast::Query, outer: OuterRef<'_>) -> Result<Correlated<'q>> {
        let plan = self.bind_with_outer(q, outer)?;
        Ok(if reads_outer(&plan) {
            Correlated::General(plan)
        } else {
            Correlated::No
        })
    }

    /// `EXISTS (q)` as a value: a left join with the subquery's distinct
    /// correlation keys (or its first row); a missing row means false.
    pub(super) fn bind_exists_value(
        &self,
        q: &ast::Query,
        outer: OuterRef<'_>,
    ) -> Result<PendingSubquery> {
        let at = location_of(q.span());
        let present = || Expr::Literal(datafusion_common::ScalarValue::Boolean(Some(true)));
        let (plan, outer_keys, inner_keys) = match self.bind_correlated(q, outer, at)? {
            Correlated::General(plan) => return Ok(exists_general(plan, self.next_id())),
            Correlated::No => {
                let sub = self.bind_query(q)?.plan;
                let one = LogicalPlan::Limit {
                    input: Box::new(sub),
                    skip: 0,
                    fetch: Some(1),
                };
                let plan = LogicalPlan::project(one, vec![present()], &["__present".to_string()])?;
                (plan, vec![], vec![])
            }
            Correlated::Plain(sub, _, correlation, _) => {
                if !correlation.residual.is_empty() {
                    return self.bind_exists_general(q, outer);
                }
                let (outer_keys, inner_keys): (Vec<Expr>, Vec<Expr>) =
                    correlation.keys.into_iter().unzip();
                let nk = inner_keys.len();
                let names: Vec<String> = (0..nk).map(|i| format!("__key{i}")).collect();
                let keys = LogicalPlan::aggregate(sub, inner_keys, vec![], &names)?;
                let mut exprs = vec![present()];
                exprs.extend((0..nk).map(Expr::Column));
                let mut out_names = vec!["__present".to_string()];
                out_names.extend(names);
                let plan = LogicalPlan::project(keys, exprs, &out_names)?;
                (plan, outer_keys, (1..=nk).map(Expr::Column).collect())
            }
        };
        Ok(PendingSubquery {
            id: self.next_id(),
            kind: JoinKind::Left,
            plan,
            outer_keys,
            inner_keys,
            value: 0,
            data_type: DataType::Boolean,
            if_missing: Some((0, datafusion_common::ScalarValue::Boolean(Some(false)))),
            dependent: None,
        })
    }

    /// EXISTS as a value by the general unnesting.
    fn bind_exists_general(&self, q: &ast::Query, outer: OuterRef<'_>) -> Result<PendingSubquery> {
        let Correlated::General(plan) = self.general_or_not(q, outer)? else {
            return Err(QuarryError::plan(
                "internal error: EXISTS reads no outer column",
            ));
        };
        Ok(exists_general(plan, self.next_id()))
    }

    /// `x IN (q)` where it is a value, not a WHERE condition: a mark join.
    pub(super) fn bind_in_subquery_value(
        &self,
        lhs: Expr,
        lhs_sql: &ast::Expr,
        q: &ast::Query,
        outer: OuterRef<'_>,
        at: Option<Location>,
    ) -> Result<PendingSubquery> {
        if let Correlated::General(plan) = self.general_or_not(q, outer)? {
            let n = plan.schema().fields().len();
            if n != 1 {
                return Err(QuarryError::plan_at(
                    format!("the subquery of IN must return one column, not {n}"),
                    at,
                ));
            }
            return self.bind_scalar_subquery(&in_as_aggregate(lhs_sql, q)?, outer);
        }
        let plan = self.bind_single_column(q, at)?;
        Ok(PendingSubquery {
            id: self.next_id(),
            kind: JoinKind::Mark,
            plan,
            outer_keys: vec![lhs],
            inner_keys: vec![Expr::Column(0)],
            value: 0,
            data_type: DataType::Boolean,
            if_missing: None,
            dependent: None,
        })
    }

    /// A scalar subquery: uncorrelated (one row, joined to every row), or an
    /// aggregate correlated by equalities (grouped by the inner keys and
    /// joined on them).
    pub(super) fn bind_scalar_subquery(
        &self,
        q: &ast::Query,
        outer: OuterRef<'_>,
    ) -> Result<PendingSubquery> {
        let at = location_of(q.span());
        let select = match q.body.as_ref() {
            SetExpr::Select(s)
                if q.with.is_none()
                    && q.order_by.is_none()
                    && q.limit_clause.is_none()
                    && !self.carries_from(outer.scope) =>
            {
                Some(s)
            }
            _ => None,
        };
        let correlated = match select {
            Some(s) => {
                let from = self.bind_from_reading(&s.from, outer)?;
                if reads_outer(&from.plan) {
                    // a derived table in FROM reads the outer query
                    let plan = self.bind_with_outer(q, outer)?;
                    return scalar_general(plan, self.next_id(), at);
                }
                let (plan, correlated) = match &s.selection {
                    Some(w) => self.bind_where(from.plan, &from.scope, w, Some(outer))?,
                    None => (from.plan, vec![]),
                };
                (!correlated.is_empty()).then_some((s, from.scope, plan, correlated))
            }
            None => None,
        };
        let Some((select, scope, plan, correlated)) = correlated else {
            let plan = self.bind_with_outer(q, outer)?;
            if reads_outer(&plan) {
                return scalar_general(plan, self.next_id(), at);
            }
            if plan.schema().fields().len() != 1 {
                return Err(QuarryError::plan_at(
                    "a scalar subquery must return one column",
                    at,
                ));
            }
            let plan = at_most_one_row(plan)?;
            return Ok(scalar_pending(plan, self.next_id(), None));
        };
        let correlation = split_correlation(correlated);
        let grouped_or_distinct = !matches!(&select.group_by, ast::GroupByExpr::Expressions(g, _) if g.is_empty())
            || select.having.is_some()
            || select.distinct.is_some();
        if !correlation.residual.is_empty() || grouped_or_distinct {
            let plan = self.bind_with_outer(q, outer)?;
            return scalar_general(plan, self.next_id(), at);
        }
        let item = match select.projection.as_slice() {
            [ast::SelectItem::UnnamedExpr(e)]
            | [ast::SelectItem::ExprWithAlias { expr: e, .. }] => e,
            _ => {
                return Err(QuarryError::plan_at(
                    "a scalar subquery must return one column",
                    at,
                ))
            }
        };
        let in_schema = plan.schema();
        let eb = ExprBinder {
            allow_aggregates: true,
            outer: Some(outer),
            subqueries: Some(self),
            ..ExprBinder::new(&scope, &in_schema)
        };
        let mut value = eb.bind(item)?;
        let nested =
            !eb.pending.borrow().is_empty() || !eb.aggregate_input_subqueries.borrow().is_empty();
        if has_outer(&value) || nested {
            // the value reads the outer query too, or has subqueries
            let plan = self.bind_with_outer(q, outer)?;
            return scalar_general(plan, self.next_id(), at);
        }
        let mut aggs = collect_aggregates(std::iter::once(&value));
        if aggs.is_empty() {
            // A plain column: at most one row per outer row, checked when it runs.
            let (counted, count_and_value) = single_row_check(value);
            value = counted;
            aggs = count_and_value;
        }
        let (outer_keys, inner_keys): (Vec<Expr>, Vec<Expr>) = correlation.keys.into_iter().unzip();
        let nk = inner_keys.len();
        let mut names: Vec<String> = (0..nk).map(|i| format!("__key{i}")).collect();
        names.extend((0..aggs.len()).map(|i| format!("__agg{i}")));
        let on_no_rows = value_over_no_rows(&value, &in_schema)?;
        let value = rewrite_after_aggregate(value, &inner_keys, &aggs, &in_schema)?;
        let grouped = LogicalPlan::aggregate(plan, inner_keys, aggs, &names)?;
        let value = fix_function_type(value, &grouped.schema())?;
        let mut exprs = vec![value];
        exprs.extend((0..nk).map(Expr::Column));
        let mut out_names = vec!["__value".to_string()];
        out_names.extend((0..nk).map(|i| format!("__key{i}")));
        // A group that exists marks the match (an outer row without one
        // gets the value over no rows).
        let if_missing = on_no_rows.map(|v| {
            exprs.push(Expr::Literal(datafusion_common::ScalarValue::Boolean(
                Some(true),
            )));
            out_names.push("__matched".to_string());
            (nk + 1, v)
        });
        let plan = LogicalPlan::project(grouped, exprs, &out_names)?;
        let data_type = plan.schema().field(0).data_type().clone();
        Ok(PendingSubquery {
            id: self.next_id(),
            kind: JoinKind::Left,
            plan,
            outer_keys,
            inner_keys: (1..=nk).map(Expr::Column).collect(),
            value: 0,
            data_type,
            if_missing,
            dependent: None,
        })
    }
}

/// For ExprBinder users that collected subqueries: join them onto `plan`
/// and resolve the placeholders in `exprs`. `aggregated`: the GROUP BY
/// expressions and aggregates between the columns the subqueries were bound
/// over and `plan` (whose columns they are), over `in_schema`; a correlated
/// subquery then reads the outer query's group columns.
pub fn join_pending(
    plan: LogicalPlan,
    pending: &RefCell<Vec<PendingSubquery>>,
    exprs: Vec<Expr>,
    aggregated: Option<(&[Expr], &[AggregateExpr], &arrow::datatypes::Schema)>,
) -> Result<(LogicalPlan, Vec<Expr>)> {
    let mut pending = pending.take();
    if pending.is_empty() {
        return Ok((plan, exprs));
    }
    if let Some((group, aggs, in_schema)) = aggregated {
        for p in pending.iter_mut() {
            if p.dependent.is_some() {
                // It reads the group columns, now at their places in `plan`.
                let q = std::mem::replace(
                    &mut p.plan,
                    LogicalPlan::Values {
                        schema: std::sync::Arc::new(arrow::datatypes::Schema::empty()),
                        batches: vec![],
                    },
                );
                p.plan = map_plan_exprs(q, &mut |e| {
                    e.transform_up(&mut |x| match x {
                        Expr::OuterColumn { index, data_type } => {
                            match group.iter().position(|g| *g == Expr::Column(index)) {
                                Some(i) => Ok(Expr::OuterColumn { index: i, data_type }),
                                None => Err(QuarryError::plan(format!(
                                    "column '{}' must appear in the GROUP BY clause or be used in an aggregate function",
                                    in_schema.field(index).name()
                                ))),
                            }
                        }
                        other => Ok(other),
                    })
                })?;
                continue;
            }
            p.outer_keys = std::mem::take(&mut p.outer_keys)
                .into_iter()
                .map(|k| rewrite_after_aggregate(k, group, aggs, in_schema))
                .collect::<Result<_>>()?;
        }
    }
    let (plan, columns) = apply_subqueries(plan, pending)?;
    let exprs = exprs
        .into_iter()
        .map(|e| resolve_subquery_refs(e, &columns))
        .collect::<Result<_>>()?;
    Ok((plan, exprs))
}
