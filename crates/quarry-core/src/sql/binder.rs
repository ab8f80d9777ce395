//! Binding queries: AST → LogicalPlan with names resolved and types checked.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Schema};
use arrow::record_batch::RecordBatch;
use datafusion_common::ScalarValue;
use sqlparser::ast::{self, GroupByExpr, LimitClause, OrderByKind, SelectItem, SetExpr, Spanned};

use super::expr::{ExprBinder, OuterRef};
use super::from::one_row_batch;
use super::grouping_sets;
use super::lateral::OuterScope;
use super::location_of;
use super::scope::Scope;
use super::subquery::{collect_aggregates, join_pending, rewrite_after_aggregate};
use super::window::{collect_windows, plan_windows, replace_windows};
use crate::catalog::Catalog;
use crate::error::{QuarryError, Result};
use crate::plan::{BinaryOp, Expr, LogicalPlan, SortKey, WindowExpr, WindowFrame, WindowFunc};

/// A bound relation: its plan and the names its columns go by.
#[derive(Clone)]
pub struct Bound {
    pub plan: LogicalPlan,
    pub scope: Scope,
}

/// A bound WITH query and its column names.
type BoundCte = (LogicalPlan, Vec<String>);

pub struct Binder<'a> {
    pub(super) catalog: &'a Catalog,
    /// Common table expressions visible here, innermost last.
    pub(super) ctes: RefCell<Vec<HashMap<String, Arc<BoundCte>>>>,
    /// Views being expanded, to catch a view that refers to itself.
    pub(super) expanding: RefCell<Vec<String>>,
    /// WITH queries being bound that may not name themselves (a recursive
    /// CTE's first part, a WITH RECURSIVE query without UNION).
    pub(super) defining: RefCell<Vec<String>>,
    /// The query whose columns the one being bound may read anywhere
    /// (lateral.rs).
    pub(super) correlated: RefCell<Option<Arc<OuterScope>>>,
    /// Numbers the subqueries that become joins.
    pub(super) next_subquery: Cell<usize>,
    /// Every FROM bound in this statement (forward.rs).
    pub(super) scopes_seen: RefCell<Vec<Scope>>,
    /// Columns read from more than one level out, noted (forward.rs) ...
    pub(super) far_columns: RefCell<Vec<super::forward::FarColumn>>,
    /// ... and carried down in this try.
    pub(super) carried: RefCell<Vec<super::forward::FarColumn>>,
}

/// One SELECT item after `*` expansion.
struct Item {
    expr: Expr,
    name: String,
    /// The AST, for GROUP BY by alias or ordinal.
    ast: Option<ast::Expr>,
}

impl<'a> Binder<'a> {
    pub fn new(catalog: &'a Catalog) -> Self {
        super::temporal::begin_statement();
        Binder {
            catalog,
            ctes: RefCell::new(vec![]),
            expanding: RefCell::new(vec![]),
            defining: RefCell::new(vec![]),
            correlated: RefCell::new(None),
            next_subquery: Cell::new(0),
            scopes_seen: RefCell::new(vec![]),
            far_columns: RefCell::new(vec![]),
            carried: RefCell::new(vec![]),
        }
    }

    pub fn bind_query(&self, q: &ast::Query) -> Result<Bound> {
        let pushed = if let Some(with) = &q.with {
            self.ctes.borrow_mut().push(HashMap::new());
            for (k, cte) in with.cte_tables.iter().enumerate() {
                let name = &cte.alias.name.value;
                if with.cte_tables[..k]
                    .iter()
                    .any(|c| c.alias.name.value.eq_ignore_ascii_case(name))
                {
                    self.ctes.borrow_mut().pop();
                    return Err(QuarryError::plan(format!("WITH names '{name}' twice")));
                }
                let bound = if with.recursive {
                    self.bind_recursive_cte(cte)
                } else {
                    self.defining_self(name, || self.bind_query(&cte.query))
                        .and_then(|b| Ok((cte_column_names(cte, b.scope.names())?, b.plan)))
                };
                let (names, plan) = match bound {
                    Ok(b) => b,
                    Err(e) => {
                        self.ctes.borrow_mut().pop();
                        return Err(e);
                    }
                };
                self.add_cte(name, plan, names);
            }
            true
        } else {
            false
        };
        let result = self.bind_query_body(q);
        if pushed {
            self.ctes.borrow_mut().pop();
        }
        result
    }

    /// Makes `name` stand for `plan` (columns `names`) in the innermost WITH.
    pub(super) fn add_cte(&self, name: &str, plan: LogicalPlan, names: Vec<String>) {
        if let Some(scope) = self.ctes.borrow_mut().last_mut() {
            scope.insert(name.to_lowercase(), Arc::new((plan, names)));
        }
    }

    fn bind_query_body(&self, q: &ast::Query) -> Result<Bound> {
        if q.fetch.is_some() || !q.locks.is_empty() {
            return Err(QuarryError::plan("FETCH and FOR UPDATE are not supported"));
        }
        // (a dialect's own ORDER BY ALL, written as the generic dialect
        // reads it: the one key `ALL`, see `order_by_all`)
        let all: Vec<ast::OrderByExpr>;
        let order_by: &[ast::OrderByExpr] = match &q.order_by {
            None => &[],
            Some(ob) => match &ob.kind {
                OrderByKind::Expressions(e) => e,
                OrderByKind::All(options) => {
                    all = vec![ast::OrderByExpr {
                        expr: ast::Expr::Identifier(ast::Ident::new("ALL")),
                        options: *options,
                        with_fill: None,
                    }];
                    &all
                }
            },
        };
        // ClickHouse's gap filling would add rows: refused, not ignored.
        let interpolates = q
            .order_by
            .as_ref()
            .is_some_and(|ob| ob.interpolate.is_some());
        if interpolates || order_by.iter().any(|o| o.with_fill.is_some()) {
            return Err(QuarryError::plan(
                "ORDER BY … WITH FILL / INTERPOLATE is not supported",
            ));
        }
        let (skip, fetch) = limit_offset(q.limit_clause.as_ref())?;
        let bound = match q.body.as_ref() {
            SetExpr::Select(select) => self.bind_select(select, order_by)?,
            other => {
                let inner = match other {
                    SetExpr::Query(inner) => self.bind_query(inner)?,
                    SetExpr::Values(v) => self.bind_values(v)?,
                    SetExpr::SetOperation {
                        left,
                        op,
                        set_quantifier,
                        right,
                    } => self.bind_set_operation(left, *op, *set_quantifier, right)?,
                    other => return Err(QuarryError::plan(format!("unsupported query: {other}"))),
                };
                self.order_by_output(inner, order_by)?
            }
        };
        Ok(apply_limit(bound, skip, fetch))
    }

    /// ORDER BY over a query that is not a plain SELECT: by output names only.
    fn order_by_output(&self, input: Bound, order_by: &[ast::OrderByExpr]) -> Result<Bound> {
        if order_by.is_empty() {
            return Ok(input);
        }
        let schema = input.plan.schema();
        let eb = ExprBinder::new(&input.scope, &schema);
        let keys = match order_by_all(order_by) {
            Some(options) => (0..schema.fields().len())
                .map(|i| sort_key(Expr::Column(i), options))
                .collect(),
            None => order_by
                .iter()
                .map(|o| {
                    let expr = match ordinal(&o.expr, schema.fields().len())? {
                        Some(i) => Expr::Column(i),
                        None => eb.bind(&o.expr)?,
                    };
                    Ok(sort_key(expr, &o.options))
                })
                .collect::<Result<Vec<_>>>()?,
        };
        Ok(Bound {
            plan: LogicalPlan::Sort {
                input: Box::new(input.plan),
                keys,
                fetch: None,
            },
            scope: input.scope,
        })
    }

    pub(super) fn bind_values(&self, v: &ast::Values) -> Result<Bound> {
        let empty = Scope::default();
        let schema = Schema::empty();
        let eb = ExprBinder::new(&empty, &schema);
        let one_row = one_row_batch();
        let mut columns: Vec<Vec<ScalarValue>> = Vec::new();
        for row in &v.rows {
            if !columns.is_empty() && row.len() != columns.len() {
                return Err(QuarryError::plan(
                    "all rows of VALUES must have the same number of values",
                ));
            }
            columns.resize(row.len(), Vec::new());
            for (i, e) in row.iter().enumerate() {
                let bound = eb.bind(e)?;
                let value = crate::exec::expr::evaluate_array(&bound, &one_row)?;
                columns[i].push(ScalarValue::try_from_array(&value, 0)?);
            }
        }
        let names: Vec<String> = (0..columns.len()).map(|i| format!("column{i}")).collect();
        let arrays = columns
            .into_iter()
            .enumerate()
            .map(|(i, vals)| {
                // Rows meet at one type per column, the one that holds
                // every value (1.5 and 2.25: DECIMAL(3,2)).
                let mut t = DataType::Null;
                let mut prev = Expr::Literal(ScalarValue::Null);
                for v in &vals {
                    let (e, vt) = (Expr::Literal(v.clone()), v.data_type());
                    t = super::coerce::comparison_type(&prev, &t, &e, &vt, None).map_err(|_| {
                        QuarryError::plan(format!(
                            "column {} of VALUES holds both {} and {}",
                            i + 1,
                            crate::plan::types::sql_type_name(&t),
                            crate::plan::types::sql_type_name(&vt)
                        ))
                    })?;
                    prev = e;
                }
                let vals = vals
                    .into_iter()
                    .map(|v| v.cast_to(&t))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                Ok(ScalarValue::iter_to_array(vals)?)
            })
            .collect::<Result<Vec<_>>>()?;
        let fields: Vec<arrow::datatypes::Field> = arrays
            .iter()
            .zip(&names)
            .map(|(a, n)| arrow::datatypes::Field::new(n, a.data_type().clone(), true))
            .collect();
        let schema = Arc::new(Schema::new(fields));
        let batch = RecordBatch::try_new(schema.clone(), arrays)?;
        Ok(Bound {
            plan: LogicalPlan::Values {
                schema,
                batches: vec![batch],
            },
            scope: Scope::new(None, names),
        })
    }

    pub(super) fn bind_select(
        &self,
        select: &ast::Select,
        order_by: &[ast::OrderByExpr],
    ) -> Result<Bound> {
        // A clause the binder would skip changes the answer: refuse it.
        let unsupported = [
            (select.top.is_some(), "TOP"),
            (select.into.is_some(), "INTO"),
            (!select.lateral_views.is_empty(), "LATERAL VIEW"),
            (select.prewhere.is_some(), "PREWHERE"),
            (!select.connect_by.is_empty(), "CONNECT BY"),
            (!select.cluster_by.is_empty(), "CLUSTER BY"),
            (!select.distribute_by.is_empty(), "DISTRIBUTE BY"),
            (!select.sort_by.is_empty(), "SORT BY"),
            (select.exclude.is_some(), "EXCLUDE"),
            (select.value_table_mode.is_some(), "SELECT AS VALUE/STRUCT"),
            (select.select_modifiers.is_some(), "SELECT modifiers"),
        ];
        if let Some((_, clause)) = unsupported.iter().find(|(present, _)| *present) {
            return Err(QuarryError::plan_at(
                format!("{clause} is not supported"),
                location_of(select.select_token.0.span),
            ));
        }
        let from = self.bind_from(&select.from)?;
        // A LATERAL subquery reads its left side's columns anywhere.
        let correlated = self.correlated.borrow().clone();
        let from = match correlated.as_deref() {
            Some(o) => self.carry_down(from, o)?,
            None => from,
        };
        let mut plan = from.plan;
        let scope = from.scope;
        let in_schema = plan.schema();
        let outer = correlated.as_deref().map(|o| OuterRef {
            scope: &o.scope,
            schema: &o.schema,
        });
        let plain = ExprBinder {
            outer,
            ..ExprBinder::new(&scope, &in_schema)
        };
        if let Some(w) = &select.selection {
            let (filtered, reads_outer) = self.bind_where(plan, &scope, w, outer)?;
            plan = filtered;
            if !reads_outer.is_empty() {
                plan = LogicalPlan::Filter {
                    input: Box::new(plan),
                    predicate: Expr::and_all(reads_outer),
                };
            }
        }
        let agg_binder = ExprBinder {
            outer,
            allow_aggregates: true,
            subqueries: Some(self),
            allow_windows: std::cell::Cell::new(true),
            aliases: RefCell::new(vec![]),
            named_windows: select
                .named_window
                .iter()
                .map(|d| (d.0.value.clone(), d.1.clone()))
                .collect(),
            ..ExprBinder::new(&scope, &in_schema)
        };
        // SELECT items, with * expanded.
        let mut items: Vec<Item> = Vec::new();
        for item in &select.projection {
            match item {
                SelectItem::Wildcard(options) => {
                    reject_wildcard_options(options)?;
                    if scope.columns.is_empty() {
                        return Err(QuarryError::plan("SELECT * needs a FROM clause"));
                    }
                    for (i, c) in scope.columns.iter().enumerate().filter(|(_, c)| !c.hidden) {
                        items.push(Item {
                            expr: Expr::Column(i),
                            name: c.name.clone(),
                            ast: None,
                        });
                    }
                }
                SelectItem::QualifiedWildcard(kind, options) => {
                    reject_wildcard_options(options)?;
                    let q = match kind {
                        ast::SelectItemQualifiedWildcardKind::ObjectName(name) => name
                            .0
                            .last()
                            .and_then(|p| p.as_ident())
                            .map(|i| i.value.clone())
                            .unwrap_or_default(),
                        ast::SelectItemQualifiedWildcardKind::Expr(e) => {
                            return Err(QuarryError::plan(format!(
                                "unsupported SELECT item: {e}.*"
                            )))
                        }
                    };
                    let before = items.len();
                    for (i, c) in scope.columns.iter().enumerate() {
                        if !c.forwarded
                            && c.qualifier
                                .as_deref()
                                .is_some_and(|cq| cq.eq_ignore_ascii_case(&q))
                        {
                            items.push(Item {
                                expr: Expr::Column(i),
                                name: c.name.clone(),
                                ast: None,
                            });
                        }
                    }
                    if items.len() == before {
                        return Err(QuarryError::plan(format!(
                            "no table named '{q}' in this query"
                        )));
                    }
                }
                SelectItem::UnnamedExpr(e) => items.push(Item {
                    expr: agg_binder.bind(e)?,
                    name: output_name(e),
                    ast: Some(e.clone()),
                }),
                SelectItem::ExprWithAlias { expr, alias } => items.push(Item {
                    expr: agg_binder.bind(expr)?,
                    name: alias.value.clone(),
                    ast: Some(expr.clone()),
                }),
                other => {
                    return Err(QuarryError::plan(format!(
                        "unsupported SELECT item: {other}"
                    )))
                }
            }
        }
        let mut having = select
            .having
            .as_ref()
            .map(|h| {
                agg_binder.allow_windows.set(false);
                let bound = agg_binder.bind_predicate(h, "HAVING");
                agg_binder.allow_windows.set(true);
                bound
            })
            .transpose()?;
        *agg_binder.aliases.borrow_mut() = items
            .iter()
            .map(|it| (it.name.clone(), it.expr.clone()))
            .collect();
        let mut qualify = select
            .qualify
            .as_ref()
            .map(|q| agg_binder.bind_predicate(q, "QUALIFY"))
            .transpose()?;
        agg_binder.aliases.borrow_mut().clear();
        if qualify
            .as_ref()
            .is_some_and(|q| collect_windows(std::iter::once(q)).is_empty())
            && collect_windows(items.iter().map(|i| &i.expr)).is_empty()
        {
            return Err(QuarryError::plan(
                "QUALIFY needs a window function in the SELECT list or in QUALIFY",
            ));
        }
        // ORDER BY: an output column (by name or ordinal) or an expression.
        enum OrderRef {
            Output(usize),
            Expr(Expr),
        }
        let mut order_refs = Vec::new();
        let all = order_by_all(order_by);
        if let Some(options) = all {
            order_refs.extend((0..items.len()).map(|i| (OrderRef::Output(i), options)));
        }
        let keys = if all.is_some() { &[][..] } else { order_by };
        for o in keys {
            let r = if let Some(i) = ordinal(&o.expr, items.len())? {
                OrderRef::Output(i)
            } else if let Some(i) = match &o.expr {
                ast::Expr::Identifier(id) => items
                    .iter()
                    .position(|it| it.name.eq_ignore_ascii_case(&id.value)),
                _ => None,
            } {
                // An output name wins over an input column of the same name.
                OrderRef::Output(i)
            } else {
                OrderRef::Expr(agg_binder.bind(&o.expr)?)
            };
            order_refs.push((r, &o.options));
        }
        // DISTINCT ON keys go through the same binding and rewriting as
        // ORDER BY's, after them; they are split off at the projection.
        let no_options = ast::OrderByOptions {
            asc: None,
            nulls_first: None,
        };
        let distinct_on: &[ast::Expr] = match &select.distinct {
            Some(ast::Distinct::On(exprs)) => exprs,
            _ => &[],
        };
        let sort_key_count = order_refs.len();
        for e in distinct_on {
            let output = match e {
                ast::Expr::Identifier(id) => items
                    .iter()
                    .position(|it| it.name.eq_ignore_ascii_case(&id.value)),
                _ => None,
            };
            let r = match ordinal(e, items.len())?.or(output) {
                Some(i) => OrderRef::Output(i),
                None => OrderRef::Expr(agg_binder.bind(e)?),
            };
            order_refs.push((r, &no_options));
        }
        // GROUP BY expressions, by expression, output alias or ordinal.
        let (group_asts, set_asts): (Vec<ast::Expr>, Option<Vec<Vec<ast::Expr>>>) =
            match &select.group_by {
                GroupByExpr::Expressions(exprs, modifiers) => {
                    match grouping_sets::grouping_sets(exprs, modifiers)? {
                        None => (exprs.clone(), None),
                        Some(sets) => (sets.concat(), Some(sets)),
                    }
                }
                GroupByExpr::All(modifiers) => {
                    if !modifiers.is_empty() {
                        return Err(QuarryError::plan(
                        "GROUP BY ALL WITH ROLLUP / CUBE / TOTALS is not supported: name the keys",
                    ));
                    }
                    (vec![], None)
                }
            };
        let group_by_all = matches!(select.group_by, GroupByExpr::All(_));
        let bind_group = |g: &ast::Expr| -> Result<Expr> {
            if let Some(i) = ordinal(g, items.len())? {
                return match &items[i].ast {
                    Some(a) => plain.bind(a),
                    None => Ok(items[i].expr.clone()),
                };
            }
            match plain.bind(g) {
                Ok(e) => Ok(e),
                Err(err) => {
                    // GROUP BY an output alias
                    let alias = match g {
                        ast::Expr::Identifier(id) => items
                            .iter()
                            .find(|it| it.name.eq_ignore_ascii_case(&id.value)),
                        _ => None,
                    };
                    match alias.and_then(|it| it.ast.as_ref()) {
                        Some(a) => plain.bind(a),
                        None => Err(err),
                    }
                }
            }
        };
        let mut group = Vec::new();
        if group_by_all {
            // DuckDB's GROUP BY ALL: every select item that calls no
            // aggregate and no window function is a key.
            for it in &items {
                let item = std::iter::once(&it.expr);
                if !collect_aggregates(item.clone()).is_empty()
                    || !super::window::collect_windows(item).is_empty()
                {
                    continue;
                }
                let bound = match &it.ast {
                    Some(a) => plain.bind(a)?,
                    None => it.expr.clone(),
                };
                if !group.contains(&bound) {
                    group.push(bound);
                }
            }
        }
        for g in &group_asts {
            let bound = bind_group(g)?;
            if !group.contains(&bound) {
                group.push(bound);
            }
        }
        // each grouping set as positions in `group`
        let sets: Option<Vec<Vec<usize>>> = match &set_asts {
            None => None,
            Some(sets) => Some(
                sets.iter()
                    .map(|set| {
                        let mut positions: Vec<usize> = Vec::new();
                        for g in set {
                            let bound = bind_group(g)?;
                            let i = group.iter().position(|x| *x == bound).unwrap_or(0);
                            if !positions.contains(&i) {
                                positions.push(i);
                            }
                        }
                        Ok(positions)
                    })
                    .collect::<Result<_>>()?,
            ),
        };
        // Subqueries in aggregates' arguments join the rows to aggregate.
        let input_subqueries = agg_binder.aggregate_input_subqueries.take();
        let in_schema = if input_subqueries.is_empty() {
            in_schema.clone()
        } else {
            let (joined, values) = super::subquery::apply_subqueries(plan, input_subqueries)?;
            plan = joined;
            let resolve = |e: &mut Expr| -> Result<()> {
                *e = super::subquery::resolve_some_subquery_refs(e.clone(), &values)?;
                Ok(())
            };
            for it in items.iter_mut() {
                resolve(&mut it.expr)?;
            }
            having = having.map(|mut e| resolve(&mut e).map(|_| e)).transpose()?;
            for e in qualify.iter_mut() {
                resolve(e)?;
            }
            for (r, _) in order_refs.iter_mut() {
                if let OrderRef::Expr(e) = r {
                    resolve(e)?;
                }
            }
            plan.schema()
        };
        let mut order_exprs: Vec<&Expr> = Vec::new();
        for (r, _) in &order_refs {
            if let OrderRef::Expr(e) = r {
                order_exprs.push(e);
            }
        }
        let aggs = collect_aggregates(
            items
                .iter()
                .map(|i| &i.expr)
                .chain(having.iter())
                .chain(qualify.iter())
                .chain(order_exprs),
        );
        let aggregated = !group.is_empty() || !aggs.is_empty() || sets.is_some();
        if aggregated {
            let mut names: Vec<String> = group
                .iter()
                .map(|g| g.display(&in_schema).to_string())
                .collect();
            names.extend(aggs.iter().map(|a| a.display(&in_schema).to_string()));
            let rewrite = |e: Expr| rewrite_after_aggregate(e, &group, &aggs, &in_schema);
            for it in items.iter_mut() {
                it.expr = rewrite(it.expr.clone())?;
            }
            having = having.map(rewrite).transpose()?;
            qualify = qualify.map(rewrite).transpose()?;
            for (r, _) in order_refs.iter_mut() {
                if let OrderRef::Expr(e) = r {
                    *e = rewrite(e.clone())?;
                }
            }
            let mut rewritten: Vec<&Expr> = items.iter().map(|i| &i.expr).collect();
            rewritten.extend(having.iter().chain(qualify.iter()));
            for (r, _) in &order_refs {
                if let OrderRef::Expr(e) = r {
                    rewritten.push(e);
                }
            }
            let calls = grouping_sets::grouping_calls(rewritten.into_iter(), group.len())?;
            if sets.is_none() && calls.is_empty() {
                plan = LogicalPlan::aggregate(plan, group.clone(), aggs.clone(), &names)?;
            } else {
                let all = vec![(0..group.len()).collect()];
                let sets = sets.as_deref().unwrap_or(&all);
                plan = grouping_sets::plan(plan, &group, &aggs, &names, sets, &calls)?;
                let first = group.len() + aggs.len();
                let replace = |e: Expr| grouping_sets::replace_grouping_calls(e, first, &calls);
                for it in items.iter_mut() {
                    it.expr = replace(it.expr.clone())?;
                }
                having = having.map(replace).transpose()?;
                qualify = qualify.map(replace).transpose()?;
                for (r, _) in order_refs.iter_mut() {
                    if let OrderRef::Expr(e) = r {
                        *e = replace(e.clone())?;
                    }
                }
            }
        }
        // Subqueries of SELECT, HAVING and ORDER BY join here, after any
        // aggregation. Without aggregation the plan still has the FROM
        // columns, so correlated ones can join too.
        if !agg_binder.pending.borrow().is_empty() {
            let mut exprs: Vec<Expr> = items.iter().map(|i| i.expr.clone()).collect();
            exprs.extend(having.clone());
            exprs.extend(qualify.clone());
            for (r, _) in &order_refs {
                if let OrderRef::Expr(e) = r {
                    exprs.push(e.clone());
                }
            }
            let after = aggregated.then_some((&group[..], &aggs[..], in_schema.as_ref()));
            let (joined, resolved) = join_pending(plan, &agg_binder.pending, exprs, after)?;
            plan = joined;
            let mut resolved = resolved.into_iter();
            for it in items.iter_mut() {
                it.expr = resolved.next().unwrap_or(Expr::Column(0));
            }
            if having.is_some() {
                having = resolved.next();
            }
            if qualify.is_some() {
                qualify = resolved.next();
            }
            for (r, _) in order_refs.iter_mut() {
                if let OrderRef::Expr(e) = r {
                    if let Some(x) = resolved.next() {
                        *e = x;
                    }
                }
            }
        }
        if let Some(h) = having {
            plan = LogicalPlan::Filter {
                input: Box::new(plan),
                predicate: h,
            };
        }
        // Window functions: over the rows after HAVING, before QUALIFY,
        // DISTINCT, ORDER BY and the projection.
        let mut order_exprs: Vec<&mut Expr> = Vec::new();
        for (r, _) in order_refs.iter_mut() {
            if let OrderRef::Expr(e) = r {
                order_exprs.push(e);
            }
        }
        let windows = collect_windows(
            items
                .iter()
                .map(|i| &i.expr)
                .chain(qualify.iter())
                .chain(order_exprs.iter().map(|e| &**e)),
        );
        if !windows.is_empty() {
            let (windowed, placed) = plan_windows(plan, &windows)?;
            plan = windowed;
            for it in items.iter_mut() {
                it.expr = replace_windows(it.expr.clone(), &placed)?;
            }
            qualify = qualify.map(|q| replace_windows(q, &placed)).transpose()?;
            for e in order_exprs {
                *e = replace_windows(e.clone(), &placed)?;
            }
        }
        if let Some(q) = qualify {
            plan = LogicalPlan::Filter {
                input: Box::new(plan),
                predicate: q,
            };
        }
        // Projection, plus hidden columns for ORDER BY expressions not selected.
        let mut exprs: Vec<Expr> = items.iter().map(|i| i.expr.clone()).collect();
        let mut names: Vec<String> = items.iter().map(|i| i.name.clone()).collect();
        let visible = exprs.len();
        let mut keys = Vec::new();
        let mut on_columns = Vec::new();
        for (k, (r, options)) in order_refs.into_iter().enumerate() {
            let col = match r {
                OrderRef::Output(i) => i,
                OrderRef::Expr(e) => match exprs.iter().position(|x| *x == e) {
                    Some(i) => i,
                    None => {
                        exprs.push(e);
                        names.push(format!("__order{}", exprs.len()));
                        exprs.len() - 1
                    }
                },
            };
            if k < sort_key_count {
                keys.push(sort_key(Expr::Column(col), options));
            } else {
                on_columns.push(Expr::Column(col));
            }
        }
        let distinct = matches!(select.distinct, Some(ast::Distinct::Distinct));
        if distinct && exprs.len() > visible {
            return Err(QuarryError::plan(
                "for SELECT DISTINCT, ORDER BY expressions must appear in the select list",
            ));
        }
        plan = LogicalPlan::project(plan, exprs, &names)?;
        if distinct {
            let n = names.len();
            plan =
                LogicalPlan::aggregate(plan, (0..n).map(Expr::Column).collect(), vec![], &names)?;
        }
        if !distinct_on.is_empty() {
            // the first row of each DISTINCT ON key in the ORDER BY's order
            let first = WindowExpr {
                func: WindowFunc::RowNumber,
                args: vec![],
                distinct: false,
                param: None,
                partition_by: on_columns,
                order_by: keys.clone(),
                frame: WindowFrame::default_for(!keys.is_empty()),
            };
            let n = names.len();
            names.push("__distinct_on".to_string());
            plan = LogicalPlan::window(plan, vec![first], &names[n..])?;
            plan = LogicalPlan::Filter {
                input: Box::new(plan),
                predicate: Expr::binary(
                    BinaryOp::Eq,
                    Expr::Column(n),
                    Expr::lit(ScalarValue::Int64(Some(1))),
                ),
            };
        }
        if !keys.is_empty() {
            plan = LogicalPlan::Sort {
                input: Box::new(plan),
                keys,
                fetch: None,
            };
        }
        if names.len() > visible {
            let schema = plan.schema();
            let cols: Vec<Expr> = (0..visible).map(Expr::Column).collect();
            let visible_names: Vec<String> = schema.fields()[..visible]
                .iter()
                .map(|f| f.name().clone())
                .collect();
            plan = LogicalPlan::project(plan, cols, &visible_names)?;
            names.truncate(visible);
        }
        Ok(Bound {
            plan,
            scope: Scope::new(None, names),
        })
    }
}

/// The column names of a WITH query: its own list, else its query's.
pub(super) fn cte_column_names(cte: &ast::Cte, names: Vec<String>) -> Result<Vec<String>> {
    if cte.alias.columns.is_empty() {
        return Ok(names);
    }
    if cte.alias.columns.len() != names.len() {
        return Err(QuarryError::plan_at(
            format!(
                "WITH {} names {} columns but its query has {}",
                cte.alias.name,
                cte.alias.columns.len(),
                names.len()
            ),
            location_of(cte.alias.name.span),
        ));
    }
    Ok(cte
        .alias
        .columns
        .iter()
        .map(|c| c.name.value.clone())
        .collect())
}

/// The default name of a SELECT item: a column's own name, else the SQL text.
fn output_name(e: &ast::Expr) -> String {
    match e {
        ast::Expr::Identifier(id) => id.value.clone(),
        ast::Expr::CompoundIdentifier(ids) => {
            ids.last().map(|i| i.value.clone()).unwrap_or_default()
        }
        ast::Expr::Nested(inner) => output_name(inner),
        other => other.to_string(),
    }
}

/// `ORDER BY 2` / `GROUP BY 2`: a 0-based output index.
/// For `ORDER BY ALL [ASC|DESC] [NULLS …]` (the one key `ALL`, unquoted: a
/// keyword, as in DuckDB), its options: every output column is a key, left
/// to right.
fn order_by_all(order_by: &[ast::OrderByExpr]) -> Option<&ast::OrderByOptions> {
    match order_by {
        [ast::OrderByExpr {
            expr: ast::Expr::Identifier(id),
            options,
            ..
        }] if id.quote_style.is_none() && id.value.eq_ignore_ascii_case("all") => Some(options),
        _ => None,
    }
}

fn ordinal(e: &ast::Expr, n: usize) -> Result<Option<usize>> {
    if let ast::Expr::Value(v) = e {
        if let ast::Value::Number(s, _) = &v.value {
            let k: usize = s.parse().map_err(|_| {
                QuarryError::plan_at(format!("invalid position {s}"), location_of(e.span()))
            })?;
            if k == 0 || k > n {
                return Err(QuarryError::plan_at(
                    format!("position {k} is not in the select list (1 to {n})"),
                    location_of(e.span()),
                ));
            }
            return Ok(Some(k - 1));
        }
    }
    Ok(None)
}

pub(super) fn sort_key(expr: Expr, options: &ast::OrderByOptions) -> SortKey {
    let asc = options.asc.unwrap_or(true);
    // DuckDB's default: NULLS LAST whatever the direction.
    SortKey {
        expr,
        asc,
        nulls_first: options.nulls_first.unwrap_or(false),
    }
}

fn limit_offset(clause: Option<&LimitClause>) -> Result<(usize, Option<usize>)> {
    let constant = |e: &ast::Expr, what: &str| -> Result<usize> {
        let loc = location_of(e.span());
        let value = match e {
            ast::Expr::Value(v) => match &v.value {
                ast::Value::Number(s, _) => s.parse::<i64>().ok(),
                _ => None,
            },
            ast::Expr::UnaryOp {
                op: ast::UnaryOperator::Minus,
                expr,
            } => match expr.as_ref() {
                ast::Expr::Value(v) => match &v.value {
                    ast::Value::Number(s, _) => s.parse::<i64>().ok().map(|n| -n),
                    _ => None,
                },
                _ => None,
            },
            _ => None,
        };
        match value {
            Some(n) if n >= 0 => Ok(n as usize),
            Some(n) => Err(QuarryError::plan_at(
                format!("{what} must not be negative, got {n}"),
                loc,
            )),
            None => Err(QuarryError::plan_at(
                format!("{what} must be an integer constant"),
                loc,
            )),
        }
    };
    match clause {
        None => Ok((0, None)),
        Some(LimitClause::LimitOffset {
            limit,
            offset,
            limit_by,
        }) => {
            if !limit_by.is_empty() {
                return Err(QuarryError::plan("LIMIT BY is not supported"));
            }
            let fetch = match limit {
                Some(ast::Expr::Value(v)) if matches!(v.value, ast::Value::Null) => None,
                Some(l) => Some(constant(l, "LIMIT")?),
                None => None,
            };
            let skip = offset
                .as_ref()
                .map(|o| constant(&o.value, "OFFSET"))
                .transpose()?
                .unwrap_or(0);
            Ok((skip, fetch))
        }
        Some(LimitClause::OffsetCommaLimit { offset, limit }) => {
            Ok((constant(offset, "OFFSET")?, Some(constant(limit, "LIMIT")?)))
        }
    }
}

fn apply_limit(bound: Bound, skip: usize, fetch: Option<usize>) -> Bound {
    if skip == 0 && fetch.is_none() {
        return bound;
    }
    Bound {
        plan: LogicalPlan::Limit {
            input: Box::new(bound.plan),
            skip,
            fetch,
        },
        scope: bound.scope,
    }
}

/// `* EXCLUDE (…)`, `* REPLACE (…)` and the like change the columns: refuse
/// them rather than expand a plain `*`.
fn reject_wildcard_options(options: &ast::WildcardAdditionalOptions) -> Result<()> {
    let unsupported = [
        (options.opt_ilike.is_some(), "ILIKE"),
        (options.opt_exclude.is_some(), "EXCLUDE"),
        (options.opt_except.is_some(), "EXCEPT"),
        (options.opt_replace.is_some(), "REPLACE"),
        (options.opt_rename.is_some(), "RENAME"),
        (options.opt_alias.is_some(), "an alias"),
    ];
    match unsupported.iter().find(|(present, _)| *present) {
        Some((_, what)) => Err(QuarryError::plan_at(
            format!("* {what} is not supported"),
            location_of(options.wildcard_token.0.span),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use crate::session::{Session, SessionConfig};
    use crate::sql::expr::{AGGREGATES, SCALARS, SPECIAL_FORMS};
    use crate::sql::from::TABLE_FUNCTIONS;

    /// `quarry_functions()` lists only what the binder knows.
    #[test]
    fn every_listed_function_is_known_to_the_binder() {
        let session = Session::new(SessionConfig::default()).unwrap();
        let temporal = crate::sql::temporal::TEMPORAL_FUNCTIONS;
        for name in SCALARS.iter().chain(AGGREGATES).chain(temporal) {
            if let Err(e) = session.sql(&format!("SELECT {name}(1)")) {
                assert!(!e.to_string().contains("unknown function"), "{name}: {e}");
            }
        }
        let forms = [
            ("cast", "SELECT CAST(1 AS BIGINT)"),
            ("try_cast", "SELECT TRY_CAST('x' AS BIGINT)"),
            ("extract", "SELECT EXTRACT(year FROM DATE '2020-01-02')"),
            ("position", "SELECT POSITION('b' IN 'abc')"),
        ];
        for name in SPECIAL_FORMS {
            let (_, sql) = forms
                .iter()
                .find(|(form, _)| form == name)
                .unwrap_or_else(|| panic!("no statement tries the listed form {name}"));
            session.sql(sql).unwrap();
        }
        for name in crate::plan::WindowFunc::NAMES {
            let sql = match name {
                "ntile" => "SELECT ntile(2) OVER ()".to_string(),
                "nth_value" => "SELECT nth_value(1, 1) OVER ()".to_string(),
                "row_number" | "rank" | "dense_rank" | "percent_rank" | "cume_dist" => {
                    format!("SELECT {name}() OVER ()")
                }
                _ => format!("SELECT {name}(1) OVER ()"),
            };
            session.sql(&sql).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        for name in TABLE_FUNCTIONS {
            if let Err(e) = session.sql(&format!("SELECT * FROM {name}()")) {
                assert!(
                    !e.to_string().contains("unknown table function"),
                    "{name}: {e}"
                );
            }
        }
    }
}
