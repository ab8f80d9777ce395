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
use super::location_of;
use super::scope::Scope;
use crate::error::{Location, QuarryError, Result};
use crate::plan::{AggregateExpr, BinaryOp, Expr, JoinKind, LogicalPlan};

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

fn has_subquery_ref(e: &Expr) -> bool {
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
fn keep_first(plan: LogicalPlan, width: usize) -> Result<LogicalPlan> {
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
    for p in pending {
        let width = plan.schema().fields().len();
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
    let mut p = &plan;
    loop {
        match p {
            LogicalPlan::Aggregate { group, .. } if group.is_empty() => return Ok(plan),
            LogicalPlan::Limit { fetch: Some(f), .. } if *f <= 1 => return Ok(plan),
            LogicalPlan::Project { input, .. }
            | LogicalPlan::Filter { input, .. }
            | LogicalPlan::Sort { input, .. }
            | LogicalPlan::Limit { input, .. } => p = input,
            _ => break,
        }
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
                let Some((sub, _, correlation, _)) = self.bind_correlated(subquery, outer, at)?
                else {
                    // Uncorrelated: one row of the subquery decides for all.
                    let sub = self.bind_query(subquery)?.plan;
                    return Ok(LogicalPlan::join(plan, sub, kind, vec![], None));
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
                if let Some((sub, sub_scope, correlation, select)) =
                    self.bind_correlated(subquery, outer, at)?
                {
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
                        return Err(QuarryError::plan_at(
                            "NOT IN over a subquery that reads the outer query is only supported when neither side can be NULL; use NOT EXISTS",
                            at,
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

    /// The FROM and WHERE of a subquery that reads `outer`, its scope, the
    /// conditions that read the outer query, and its SELECT; None when the
    /// subquery does not read the outer query at all (then the caller binds
    /// it as a whole).
    #[allow(clippy::type_complexity)]
    fn bind_correlated<'q>(
        &self,
        q: &'q ast::Query,
        outer: OuterRef<'_>,
        at: Option<Location>,
    ) -> Result<Option<(LogicalPlan, Scope, Correlation, &'q ast::Select)>> {
        let select = match q.body.as_ref() {
            SetExpr::Select(s) if q.with.is_none() => s,
            _ => return Ok(None),
        };
        let from = self.bind_from(&select.from)?;
        let (plan, correlated) = match &select.selection {
            Some(w) => self.bind_where(from.plan, &from.scope, w, Some(outer))?,
            None => (from.plan, vec![]),
        };
        if correlated.is_empty() {
            return Ok(None);
        }
        let plain_select = matches!(&select.group_by, ast::GroupByExpr::Expressions(g, _) if g.is_empty())
            && select.having.is_none()
            && select.distinct.is_none()
            && q.limit_clause.is_none();
        if !plain_select {
            return Err(QuarryError::plan_at(
                "a subquery that reads the outer query's columns may not use GROUP BY, HAVING, DISTINCT or LIMIT",
                at,
            ));
        }
        Ok(Some((
            plan,
            from.scope,
            split_correlation(correlated),
            select,
        )))
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
            None => {
                let sub = self.bind_query(q)?.plan;
                let one = LogicalPlan::Limit {
                    input: Box::new(sub),
                    skip: 0,
                    fetch: Some(1),
                };
                let plan = LogicalPlan::project(one, vec![present()], &["__present".to_string()])?;
                (plan, vec![], vec![])
            }
            Some((sub, _, correlation, _)) => {
                if !correlation.residual.is_empty() {
                    return Err(QuarryError::plan_at(
                        "EXISTS used as a value may only compare its columns with the outer query's by '='",
                        at,
                    ));
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
        })
    }

    /// `x IN (q)` where it is a value, not a WHERE condition: a mark join.
    pub(super) fn bind_in_subquery_value(
        &self,
        lhs: Expr,
        _lhs_type: DataType,
        q: &ast::Query,
        at: Option<Location>,
    ) -> Result<PendingSubquery> {
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
                if q.with.is_none() && q.order_by.is_none() && q.limit_clause.is_none() =>
            {
                Some(s)
            }
            _ => None,
        };
        let correlated = match select {
            Some(s) => {
                let from = self.bind_from(&s.from)?;
                let (plan, correlated) = match &s.selection {
                    Some(w) => self.bind_where(from.plan, &from.scope, w, Some(outer))?,
                    None => (from.plan, vec![]),
                };
                (!correlated.is_empty()).then_some((s, from.scope, plan, correlated))
            }
            None => None,
        };
        let Some((select, scope, plan, correlated)) = correlated else {
            let plan = self.bind_query(q)?.plan;
            if plan.schema().fields().len() != 1 {
                return Err(QuarryError::plan_at(
                    "a scalar subquery must return one column",
                    at,
                ));
            }
            let plan = at_most_one_row(plan)?;
            let schema = plan.schema();
            return Ok(PendingSubquery {
                id: self.next_id(),
                kind: JoinKind::Left,
                data_type: schema.field(0).data_type().clone(),
                plan,
                outer_keys: vec![],
                inner_keys: vec![],
                value: 0,
                if_missing: None,
            });
        };
        let correlation = split_correlation(correlated);
        if !correlation.residual.is_empty() {
            return Err(QuarryError::plan_at(
                "a correlated scalar subquery may only compare its columns with the outer query's by '='",
                at,
            ));
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
        if !matches!(&select.group_by, ast::GroupByExpr::Expressions(g, _) if g.is_empty())
            || select.having.is_some()
        {
            return Err(QuarryError::plan_at(
                "a correlated scalar subquery with GROUP BY or HAVING is not supported",
                at,
            ));
        }
        let in_schema = plan.schema();
        let eb = ExprBinder {
            allow_aggregates: true,
            ..ExprBinder::new(&scope, &in_schema)
        };
        let mut value = eb.bind(item)?;
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
        })
    }
}

/// For ExprBinder users that collected subqueries: join them onto `plan`
/// and resolve the placeholders in `exprs`. `correlated_ok`: whether `plan`
/// still has the columns the expressions were bound over (no aggregation in
/// between), so that correlated subqueries can join on them.
pub fn join_pending(
    plan: LogicalPlan,
    pending: &RefCell<Vec<PendingSubquery>>,
    exprs: Vec<Expr>,
    correlated_ok: bool,
) -> Result<(LogicalPlan, Vec<Expr>)> {
    let pending = pending.take();
    if pending.is_empty() {
        return Ok((plan, exprs));
    }
    if !correlated_ok && pending.iter().any(|p| !p.outer_keys.is_empty()) {
        return Err(QuarryError::plan(
            "a subquery that reads the outer query's columns is not supported next to GROUP BY or aggregates",
        ));
    }
    let (plan, columns) = apply_subqueries(plan, pending)?;
    let exprs = exprs
        .into_iter()
        .map(|e| resolve_subquery_refs(e, &columns))
        .collect::<Result<_>>()?;
    Ok((plan, exprs))
}
