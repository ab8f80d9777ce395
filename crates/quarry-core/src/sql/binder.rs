//! Binding queries: AST → LogicalPlan with names resolved and types checked.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Schema};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion_common::ScalarValue;
use sqlparser::ast::{
    self, FunctionArg, FunctionArgExpr, GroupByExpr, LimitClause, OrderByKind, SelectItem, SetExpr,
    Spanned, TableFactor,
};

use super::expr::{ExprBinder, OuterRef};
use super::grouping_sets;
use super::lateral::{absorb_far, is_lateral, layered, OuterScope};
use super::location_of;
use super::scope::Scope;
use super::subquery::{collect_aggregates, join_pending, rewrite_after_aggregate};
use super::window::{collect_windows, plan_windows, replace_windows};
use crate::catalog::{
    open_table, Catalog, CatalogEntry, JsonFormat, JsonTable, Series, TableProvider,
};
use crate::error::{QuarryError, Result};
use crate::plan::logical::Scan;
use crate::plan::{
    BinaryOp, Expr, JoinKind, LogicalPlan, SortKey, WindowExpr, WindowFrame, WindowFunc,
};

/// A bound relation: its plan and the names its columns go by.
#[derive(Clone)]
pub struct Bound {
    pub plan: LogicalPlan,
    pub scope: Scope,
}

/// A bound WITH query and its column names.
type BoundCte = (LogicalPlan, Vec<String>);

pub struct Binder<'a> {
    catalog: &'a Catalog,
    /// Common table expressions visible here, innermost last.
    pub(super) ctes: RefCell<Vec<HashMap<String, Arc<BoundCte>>>>,
    /// Views being expanded, to catch a view that refers to itself.
    expanding: RefCell<Vec<String>>,
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

    /// FROM: the items of a comma list are cross-joined (the optimizer
    /// finds the join keys in WHERE); explicit JOINs carry their ON keys.
    ///
    /// An item may read the columns of the items before it (LATERAL) and
    /// those of the query around (a subquery's outer query); a column of
    /// the query around that an item after the first reads is carried into
    /// the item before it (`absorb_far`), so that what an item reads of
    /// the items before it stays apart from what it reads of the query
    /// around.
    pub(super) fn bind_from(&self, from: &[ast::TableWithJoins]) -> Result<Bound> {
        let around = self.correlated.borrow().clone();
        let mut result: Option<Bound> = None;
        for twj in from {
            // what the item may read besides its own columns
            let base = match &result {
                None => around.clone(),
                Some(r) => Some(layered(r, around.as_deref())),
            };
            let mut bound =
                self.with_correlated(base.clone(), || self.bind_table_factor(&twj.relation))?;
            for join in &twj.joins {
                let outer = layered(&bound, base.as_deref());
                let right =
                    self.with_correlated(Some(outer), || self.bind_table_factor(&join.relation))?;
                let (left, right) = absorb_far(bound, right, base.as_deref())?;
                bound = self.bind_join(left, right, &join.join_operator, base.as_deref())?;
            }
            result = Some(match result {
                None => bound,
                Some(left) => {
                    let (left, bound) = absorb_far(left, bound, around.as_deref())?;
                    check_distinct_names(&left.scope, &bound.scope)?;
                    if is_lateral(&bound) {
                        self.lateral_join(left, bound, JoinKind::Inner, None)?
                    } else {
                        cross_join(left, bound)
                    }
                }
            });
        }
        if let Some(r) = &result {
            self.scopes_seen.borrow_mut().push(r.scope.clone());
        }
        // SELECT without FROM: one row, no columns.
        Ok(result.unwrap_or_else(|| Bound {
            plan: LogicalPlan::Values {
                schema: Arc::new(Schema::empty()),
                batches: vec![one_row_batch()],
            },
            scope: Scope::default(),
        }))
    }

    /// `outer`: what the ON may read besides the two sides.
    fn bind_join(
        &self,
        left: Bound,
        right: Bound,
        op: &ast::JoinOperator,
        outer: Option<&OuterScope>,
    ) -> Result<Bound> {
        use ast::JoinOperator as J;
        let (kind, constraint) = match op {
            J::Join(c) | J::Inner(c) => (JoinKind::Inner, c),
            J::Left(c) | J::LeftOuter(c) => (JoinKind::Left, c),
            J::Right(c) | J::RightOuter(c) => (JoinKind::Right, c),
            J::FullOuter(c) => (JoinKind::Full, c),
            J::CrossJoin(c) => (JoinKind::Inner, c),
            other => return Err(QuarryError::plan(format!("unsupported join: {other:?}"))),
        };
        check_distinct_names(&left.scope, &right.scope)?;
        // (a subquery in ON that reads a query further out finds the
        // column carried down in the left side)
        let left = match outer {
            Some(o) if self.carries_from(&o.scope) => self.carry_down(left, o)?,
            _ => left,
        };
        let nl = left.scope.columns.len();
        let mut using_pairs: Vec<(usize, usize)> = Vec::new();
        let mut scope = left.scope.clone();
        scope.columns.extend(right.scope.columns.iter().cloned());
        let condition = match constraint {
            ast::JoinConstraint::None => None,
            ast::JoinConstraint::On(e) => {
                let schema = crate::plan::logical::join_schema(
                    &left.plan.schema(),
                    &right.plan.schema(),
                    JoinKind::Inner,
                );
                let eb = ExprBinder {
                    subqueries: Some(self),
                    outer: outer.map(|o| OuterRef {
                        scope: &o.scope,
                        schema: &o.schema,
                    }),
                    ..ExprBinder::new(&scope, &schema)
                };
                let condition = eb.bind_predicate(e, "ON")?;
                let pending = eb.pending.take();
                if !pending.is_empty() {
                    return self.join_on_subqueries(left, right, kind, scope, condition, pending);
                }
                Some(condition)
            }
            ast::JoinConstraint::Using(cols) => {
                let mut conds = Vec::new();
                for c in cols {
                    using_pairs.push((
                        left.scope.resolve(None, &c.to_string(), None)?,
                        nl + right.scope.resolve(None, &c.to_string(), None)?,
                    ));
                    let name = c.to_string();
                    let l = left.scope.resolve(None, &name, None)?;
                    let r = right.scope.resolve(None, &name, None)?;
                    // USING merges the two columns into one: the right one
                    // is reachable only by its qualified name.
                    scope.columns[nl + r].hidden = true;
                    let (lt, rt) = (
                        left.plan.schema().field(l).data_type().clone(),
                        right.plan.schema().field(r).data_type().clone(),
                    );
                    conds.push(super::coerce::binary(
                        crate::plan::BinaryOp::Eq,
                        Expr::Column(l),
                        lt,
                        Expr::Column(nl + r),
                        rt,
                        None,
                    )?);
                }
                Some(Expr::and_all(conds))
            }
            ast::JoinConstraint::Natural => {
                return Err(QuarryError::plan("NATURAL JOIN is not supported"))
            }
        };
        if kind != JoinKind::Inner && condition.is_none() {
            return Err(QuarryError::plan("an outer join needs an ON condition"));
        }
        if is_lateral(&right) {
            return self.lateral_join(left, right, kind, condition);
        }
        let (on, filter) = match condition {
            Some(c) => split_join_condition(c, nl),
            None => (vec![], None),
        };
        let mut plan = LogicalPlan::join(left.plan, right.plan, kind, on, filter);
        if matches!(kind, JoinKind::Right | JoinKind::Full) && !using_pairs.is_empty() {
            // The merged USING column takes its value from whichever side has
            // the row: coalesce(left, right), in the left column's place.
            let schema = plan.schema();
            let mut exprs: Vec<Expr> = (0..schema.fields().len()).map(Expr::Column).collect();
            for &(l, r) in &using_pairs {
                let t = schema.field(l).data_type().clone();
                let right_value = if schema.field(r).data_type() == &t {
                    Expr::Column(r)
                } else {
                    Expr::Column(r).cast(t.clone())
                };
                exprs[l] = Expr::Function {
                    func: crate::plan::ScalarFunc::Coalesce,
                    args: vec![Expr::Column(l), right_value],
                    data_type: t,
                };
            }
            let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
            plan = LogicalPlan::project(plan, exprs, &names)?;
        }
        Ok(Bound { plan, scope })
    }

    /// A join whose ON holds subqueries: the subqueries join the cross
    /// product as WHERE's do, and the condition filters it. An outer join
    /// adds the rows of its preserved sides that no pair kept (an anti
    /// join on all their columns, NULLs equal: the condition depends only
    /// on the values, so every copy of a row matches alike), padded with
    /// NULLs, as UNION ALL.
    fn join_on_subqueries(
        &self,
        left: Bound,
        right: Bound,
        kind: JoinKind,
        scope: Scope,
        condition: Expr,
        pending: Vec<super::subquery::PendingSubquery>,
    ) -> Result<Bound> {
        let width = scope.columns.len();
        let (left_schema, right_schema) = (left.plan.schema(), right.plan.schema());
        // the conditions without subqueries join the two sides (by their
        // equalities, not as a filter over every pair)
        let (with_subqueries, plain): (Vec<Expr>, Vec<Expr>) = condition
            .split_conjunction()
            .into_iter()
            .partition(super::subquery::has_subquery_ref);
        let pairs = if is_lateral(&right) {
            // (a LATERAL right side: its rows per left row, as lateral_join
            // makes them; only inner and LEFT joins can be LATERAL)
            if !matches!(kind, JoinKind::Inner | JoinKind::Left) {
                return Err(QuarryError::plan(
                    "a LATERAL subquery or table function can only be joined by an inner or LEFT join",
                ));
            }
            let plain = (!plain.is_empty()).then(|| Expr::and_all(plain));
            self.lateral_join(left.clone(), right.clone(), JoinKind::Inner, plain)?
                .plan
        } else {
            let (on, filter) = match plain.is_empty() {
                true => (vec![], None),
                false => split_join_condition(Expr::and_all(plain), left_schema.fields().len()),
            };
            LogicalPlan::join(
                left.plan.clone(),
                right.plan.clone(),
                JoinKind::Inner,
                on,
                filter,
            )
        };
        let (pairs, values) = super::subquery::apply_subqueries(pairs, pending)?;
        let predicate = Expr::and_all(with_subqueries);
        let pairs = LogicalPlan::Filter {
            input: Box::new(pairs),
            predicate: super::subquery::resolve_subquery_refs(predicate, &values)?,
        };
        let pairs = super::subquery::keep_first(pairs, width)?;
        if kind == JoinKind::Inner {
            return Ok(Bound { plan: pairs, scope });
        }
        let schema = crate::plan::logical::join_schema(&left_schema, &right_schema, kind);
        let nl = left_schema.fields().len();
        // `side`'s rows that no pair holds, as rows of the join
        let unmatched = |side: LogicalPlan, first: usize| -> Result<LogicalPlan> {
            let n = side.schema().fields().len();
            let kept: Vec<Expr> = (first..first + n).map(Expr::Column).collect();
            let names: Vec<String> = (0..n).map(|i| format!("__pair{i}")).collect();
            let held = LogicalPlan::project(pairs.clone(), kept, &names)?;
            let all: Vec<(usize, usize)> = (0..n).map(|i| (i, i)).collect();
            let keys = super::unnest::null_equal_keys(&all, &side.schema(), &held.schema())?;
            let missing = LogicalPlan::join(side, held, JoinKind::Anti, keys, None);
            let exprs = schema
                .fields()
                .iter()
                .enumerate()
                .map(|(i, f)| match i.checked_sub(first) {
                    Some(j) if j < n => Ok(Expr::Column(j)),
                    _ => Ok(Expr::Literal(datafusion_common::ScalarValue::try_from(
                        f.data_type(),
                    )?)),
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(LogicalPlan::Project {
                input: Box::new(missing),
                exprs,
                schema: schema.clone(),
            })
        };
        let mut inputs = vec![LogicalPlan::Project {
            exprs: (0..width).map(Expr::Column).collect(),
            input: Box::new(pairs.clone()),
            schema: schema.clone(),
        }];
        if matches!(kind, JoinKind::Left | JoinKind::Full) {
            inputs.push(unmatched(left.plan, 0)?);
        }
        if matches!(kind, JoinKind::Right | JoinKind::Full) {
            inputs.push(unmatched(right.plan, nl)?);
        }
        Ok(Bound {
            plan: LogicalPlan::Union { inputs, schema },
            scope,
        })
    }

    pub(super) fn bind_table_factor(&self, tf: &TableFactor) -> Result<Bound> {
        match tf {
            TableFactor::Table {
                name,
                alias,
                args,
                with_hints,
                version,
                with_ordinality,
                partitions,
                json_path,
                sample,
                index_hints,
            } => {
                let loc = location_of(name.span());
                let unsupported = [
                    (sample.is_some(), "TABLESAMPLE"),
                    (version.is_some(), "a table version (AS OF)"),
                    (*with_ordinality, "WITH ORDINALITY"),
                    (!partitions.is_empty(), "PARTITION"),
                    (json_path.is_some(), "a JSON path"),
                    (
                        !with_hints.is_empty() || !index_hints.is_empty(),
                        "table hints",
                    ),
                ];
                if let Some((_, what)) = unsupported.iter().find(|(present, _)| *present) {
                    return Err(QuarryError::plan_at(
                        format!("{what} is not supported (on table {name})"),
                        loc,
                    ));
                }
                match args {
                    Some(args) => self.bind_table_function(name, &args.args, alias.as_ref(), loc),
                    None => apply_alias(self.bind_named_table(name, loc)?, alias.as_ref()),
                }
            }
            // `LATERAL f(…)` (the keyword changes nothing: a table
            // function may read the FROM items before it anyway)
            TableFactor::Function {
                name,
                args,
                with_ordinality,
                alias,
                ..
            } => {
                let loc = location_of(name.span());
                if *with_ordinality {
                    return Err(QuarryError::plan_at(
                        format!("WITH ORDINALITY is not supported (on {name})"),
                        loc,
                    ));
                }
                self.bind_table_function(name, args, alias.as_ref(), loc)
            }
            TableFactor::Derived {
                subquery,
                alias,
                sample,
                ..
            } => {
                if sample.is_some() {
                    return Err(QuarryError::plan("TABLESAMPLE is not supported"));
                }
                let bound = self.bind_query(subquery)?;
                apply_alias(bound, alias.as_ref())
            }
            // `a JOIN (b JOIN c ON …) ON …`: the parenthesized joins first
            TableFactor::NestedJoin {
                table_with_joins,
                alias,
            } => apply_alias(
                self.bind_from(std::slice::from_ref(table_with_joins))?,
                alias.as_ref(),
            ),
            other => Err(QuarryError::plan(format!("unsupported FROM item: {other}"))),
        }
    }

    fn bind_named_table(
        &self,
        name: &ast::ObjectName,
        loc: Option<crate::error::Location>,
    ) -> Result<Bound> {
        let parts: Vec<&ast::Ident> = name.0.iter().filter_map(|p| p.as_ident()).collect();
        let [ident] = parts.as_slice() else {
            return Err(QuarryError::plan_at(format!("unknown table '{name}'"), loc));
        };
        let text = ident.value.as_str();
        // FROM 'path/to/file.parquet'
        if ident.quote_style == Some('\'') {
            let provider = open_table(text, None, self.catalog.stores())?;
            return Ok(scan_of(text, provider, Some(&base_name(text))));
        }
        let cte = self
            .ctes
            .borrow()
            .iter()
            .rev()
            .find_map(|ctes| ctes.get(&text.to_lowercase()).cloned());
        if let Some(cte) = cte {
            let (plan, names) = cte.as_ref();
            return Ok(Bound {
                plan: plan.clone(),
                scope: Scope::new(Some(text), names.clone()),
            });
        }
        match self.catalog.get(text) {
            Some(CatalogEntry::Table(provider)) => Ok(scan_of(text, provider.clone(), Some(text))),
            Some(CatalogEntry::View { query, columns }) => {
                let key = text.to_lowercase();
                if self.expanding.borrow().contains(&key) {
                    return Err(QuarryError::plan_at(
                        format!("view '{text}' refers to itself"),
                        loc,
                    ));
                }
                self.expanding.borrow_mut().push(key);
                // A view sees the catalog, not the CTEs around its use.
                let saved = self.ctes.take();
                let defining = self.defining.take();
                let bound = self.with_correlated(None, || self.bind_query(query));
                *self.ctes.borrow_mut() = saved;
                *self.defining.borrow_mut() = defining;
                self.expanding.borrow_mut().pop();
                let bound = bound?;
                let names = if columns.is_empty() {
                    bound.scope.names()
                } else {
                    columns.clone()
                };
                Ok(Bound {
                    plan: bound.plan,
                    scope: Scope::new(Some(text), names),
                })
            }
            None => {
                let lower = text.to_lowercase();
                if lower.ends_with(".parquet")
                    || lower.ends_with(".csv")
                    || crate::catalog::is_json_path(&lower)
                {
                    let provider = open_table(text, None, self.catalog.stores())?;
                    return Ok(scan_of(text, provider, Some(&base_name(text))));
                }
                if self
                    .defining
                    .borrow()
                    .iter()
                    .any(|d| d.eq_ignore_ascii_case(text))
                {
                    return Err(QuarryError::plan_at(
                        format!(
                            "'{text}' refers to itself: only the part after UNION [ALL] of a WITH RECURSIVE query may"
                        ),
                        loc,
                    ));
                }
                let hint = self
                    .catalog
                    .closest_name(text)
                    .map(|c| format!(", did you mean '{c}'?"))
                    .unwrap_or_default();
                Err(QuarryError::plan_at(
                    format!("table '{text}' not found{hint}"),
                    loc,
                ))
            }
        }
    }

    /// A table function's result under its alias.
    fn bind_table_function(
        &self,
        name: &ast::ObjectName,
        args: &[FunctionArg],
        alias: Option<&ast::TableAlias>,
        loc: Option<crate::error::Location>,
    ) -> Result<Bound> {
        let fname = name.to_string().to_lowercase();
        if fname == "range" || fname == "generate_series" {
            let mut bound = self.bind_series(&fname, args, loc)?;
            // (as in DuckDB, `AS g` alone names the series' column too)
            if let Some(a) = alias.filter(|a| a.columns.is_empty()) {
                let column = &mut bound.scope.columns[0];
                column.former_name =
                    Some(std::mem::replace(&mut column.name, a.name.value.clone()));
            }
            return apply_alias(bound, alias);
        }
        apply_alias(
            self.bind_table_function_unaliased(&fname, args, loc)?,
            alias,
        )
    }

    fn bind_table_function_unaliased(
        &self,
        fname: &str,
        args: &[FunctionArg],
        loc: Option<crate::error::Location>,
    ) -> Result<Bound> {
        let fname = fname.to_string();
        if fname == "quarry_functions" {
            if !args.is_empty() {
                return Err(QuarryError::plan_at(
                    "quarry_functions() takes no arguments",
                    loc,
                ));
            }
            return Ok(scan_of(&fname, Arc::new(functions_table()?), Some(&fname)));
        }
        if let Some(format) = json_function_format(&fname) {
            return self.bind_read_json(&fname, format, args, loc);
        }
        let format = match fname.as_str() {
            "read_parquet" => "parquet",
            "read_csv" | "read_csv_auto" => "csv",
            other => {
                let hint = crate::catalog::closest(other, TABLE_FUNCTIONS.iter().copied())
                    .map(|c| format!(", did you mean '{c}'?"))
                    .unwrap_or_default();
                return Err(QuarryError::plan_at(
                    format!("unknown table function '{other}'{hint}"),
                    loc,
                ));
            }
        };
        let path = match args {
            [FunctionArg::Unnamed(FunctionArgExpr::Expr(ast::Expr::Value(v)))] => match &v.value {
                ast::Value::SingleQuotedString(s) => s.clone(),
                _ => {
                    return Err(QuarryError::plan_at(
                        format!("{fname}() takes a path string"),
                        loc,
                    ))
                }
            },
            _ => {
                return Err(QuarryError::plan_at(
                    format!("{fname}() takes one path string"),
                    loc,
                ))
            }
        };
        let provider = open_table(&path, Some(format), self.catalog.stores())?;
        Ok(scan_of(&path, provider, Some(&base_name(&path))))
    }

    /// `read_json('path' [, format = 'auto'|'newline_delimited'|'array'])`
    /// and its namesakes (`read_ndjson` reads newline-delimited JSON).
    fn bind_read_json(
        &self,
        fname: &str,
        mut format: JsonFormat,
        args: &[FunctionArg],
        loc: Option<crate::error::Location>,
    ) -> Result<Bound> {
        let text = |e: &ast::Expr| match e {
            ast::Expr::Value(v) => match &v.value {
                ast::Value::SingleQuotedString(s) => Some(s.clone()),
                _ => None,
            },
            _ => None,
        };
        let mut path = None;
        for a in args {
            if let Some((name, e)) = named_arg(a) {
                if !name.eq_ignore_ascii_case("format") {
                    return Err(QuarryError::plan_at(
                        format!("{fname}() option '{name}' is not supported (format is)"),
                        loc,
                    ));
                }
                let Some(f) = text(e) else {
                    return Err(QuarryError::plan_at(
                        format!("{fname}(): format takes a string"),
                        loc,
                    ));
                };
                format =
                    JsonFormat::parse(&f).map_err(|e| QuarryError::plan_at(e.to_string(), loc))?;
                continue;
            }
            match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) if path.is_none() => {
                    path = text(e);
                    if path.is_none() {
                        return Err(QuarryError::plan_at(
                            format!("{fname}() takes a path string"),
                            loc,
                        ));
                    }
                }
                other => {
                    return Err(QuarryError::plan_at(
                        format!(
                        "{fname}() argument {other} is not supported (a path and format = '…' are)"
                    ),
                        loc,
                    ))
                }
            }
        }
        let Some(path) = path else {
            return Err(QuarryError::plan_at(
                format!("{fname}() takes a path string"),
                loc,
            ));
        };
        let provider = JsonTable::open(&path, format, self.catalog.stores())?;
        Ok(scan_of(&path, Arc::new(provider), Some(&base_name(&path))))
    }

    /// `range(…)` / `generate_series(…)` over integer arguments: a table
    /// when they are constants, or a series per row of the FROM items
    /// before it when they read those (LATERAL).
    fn bind_series(
        &self,
        fname: &str,
        args: &[FunctionArg],
        loc: Option<crate::error::Location>,
    ) -> Result<Bound> {
        let empty = Scope::default();
        let schema = Schema::empty();
        let correlated = self.correlated.borrow().clone();
        let eb = ExprBinder {
            outer: correlated.as_deref().map(|o| OuterRef {
                scope: &o.scope,
                schema: &o.schema,
            }),
            ..ExprBinder::new(&empty, &schema)
        };
        let not_integer = || {
            QuarryError::plan_at(
                format!("{fname}() takes integer arguments (start, stop, step)"),
                loc,
            )
        };
        let bound = args
            .iter()
            .map(|a| {
                let FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) = a else {
                    return Err(not_integer());
                };
                let bound = eb.bind(e)?;
                let t = bound.data_type(&schema)?;
                if !(t.is_integer() || t == DataType::Null) {
                    return Err(not_integer());
                }
                Ok(bound.cast(DataType::Int64))
            })
            .collect::<Result<Vec<Expr>>>()?;
        let inclusive = fname == "generate_series";
        if bound.iter().any(super::unnest::expr_reads_outer) {
            if !(1..=3).contains(&bound.len()) {
                return Err(QuarryError::plan_at(
                    format!(
                        "{fname}() takes 1 to 3 integer arguments, got {}",
                        bound.len()
                    ),
                    loc,
                ));
            }
            let one_row = LogicalPlan::Values {
                schema: Arc::new(Schema::empty()),
                batches: vec![one_row_batch()],
            };
            return Ok(Bound {
                plan: LogicalPlan::series(one_row, bound, inclusive, fname),
                scope: Scope::new(Some(fname), vec![fname.to_string()]),
            });
        }
        let one_row = one_row_batch();
        let values = bound
            .iter()
            .map(|bound| {
                let value = crate::exec::expr::evaluate_array(bound, &one_row)?;
                match ScalarValue::try_from_array(&value, 0)?.cast_to(&DataType::Int64)? {
                    ScalarValue::Int64(v) => Ok(v),
                    _ => Err(not_integer()),
                }
            })
            .collect::<Result<Vec<Option<i64>>>>()?;
        // (a NULL argument makes the series empty, as in DuckDB)
        let series = match values.into_iter().collect::<Option<Vec<i64>>>() {
            Some(values) => Series::new(fname, &values, inclusive)
                .map_err(|e| QuarryError::plan_at(e.to_string(), loc))?,
            None => Series::EMPTY,
        };
        let table = crate::catalog::SeriesTable::new(fname, series);
        Ok(scan_of(fname, Arc::new(table), Some(fname)))
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

/// Two FROM items may not go by the same name (`FROM t, t` needs aliases).
fn check_distinct_names(left: &Scope, right: &Scope) -> Result<()> {
    let names = |s: &Scope| -> Vec<String> {
        // (a column carried from the query around keeps its table's name)
        let mut v: Vec<String> = s
            .columns
            .iter()
            .filter(|c| !c.forwarded)
            .filter_map(|c| c.qualifier.clone())
            .map(|q| q.to_lowercase())
            .collect();
        v.dedup();
        v
    };
    let l = names(left);
    if let Some(dup) = names(right).into_iter().find(|q| l.contains(q)) {
        return Err(QuarryError::plan(format!(
            "the name '{dup}' is used for two tables in FROM: give one of them an alias"
        )));
    }
    Ok(())
}

fn cross_join(left: Bound, right: Bound) -> Bound {
    let mut scope = left.scope;
    scope.columns.extend(right.scope.columns);
    Bound {
        plan: LogicalPlan::join(left.plan, right.plan, JoinKind::Inner, vec![], None),
        scope,
    }
}

/// Splits a join condition over left ++ right columns into equi-join keys
/// (one side reads only left columns, the other only right ones) and a
/// residual filter.
pub fn split_join_condition(condition: Expr, nl: usize) -> (Vec<(Expr, Expr)>, Option<Expr>) {
    let mut keys = Vec::new();
    let mut rest = Vec::new();
    for c in condition.split_conjunction() {
        match c.as_equi_key(nl) {
            Some(pair) => keys.push(pair),
            None => rest.push(c),
        }
    }
    let filter = (!rest.is_empty()).then(|| Expr::and_all(rest));
    (keys, filter)
}

/// A table function's `name = value` argument (the generic dialect parses
/// `format = 'x'` as a comparison).
fn named_arg(a: &FunctionArg) -> Option<(&str, &ast::Expr)> {
    match a {
        FunctionArg::Named {
            name,
            arg: FunctionArgExpr::Expr(e),
            ..
        }
        | FunctionArg::ExprNamed {
            name: ast::Expr::Identifier(name),
            arg: FunctionArgExpr::Expr(e),
            ..
        } => Some((&name.value, e)),
        FunctionArg::Unnamed(FunctionArgExpr::Expr(ast::Expr::BinaryOp {
            left,
            op: ast::BinaryOperator::Eq,
            right,
        })) => match left.as_ref() {
            ast::Expr::Identifier(name) => Some((&name.value, right.as_ref())),
            _ => None,
        },
        _ => None,
    }
}

/// The JSON readers of FROM and the format each reads by default.
fn json_function_format(name: &str) -> Option<JsonFormat> {
    match name {
        "read_json" | "read_json_auto" => Some(JsonFormat::Auto),
        "read_ndjson" | "read_ndjson_auto" => Some(JsonFormat::NewlineDelimited),
        _ => None,
    }
}

/// The functions of FROM.
const TABLE_FUNCTIONS: &[&str] = &[
    "read_parquet",
    "read_csv",
    "read_csv_auto",
    "read_json",
    "read_json_auto",
    "read_ndjson",
    "read_ndjson_auto",
    "range",
    "generate_series",
    "quarry_functions",
];

/// `quarry_functions()`: every function's name and kind ('scalar',
/// 'aggregate', 'window', 'table'), by name, as DuckDB's `duckdb_functions()` lists
/// its own.
fn functions_table() -> Result<crate::catalog::MemTable> {
    use super::expr::{AGGREGATES, SCALARS, SPECIAL_FORMS};
    use super::temporal::TEMPORAL_FUNCTIONS;
    use arrow::array::StringArray;
    use arrow::datatypes::{DataType, Field};
    let mut rows: Vec<(&str, &str)> = SCALARS
        .iter()
        .chain(SPECIAL_FORMS)
        .chain(TEMPORAL_FUNCTIONS)
        .map(|n| (*n, "scalar"))
        .chain(AGGREGATES.iter().map(|n| (*n, "aggregate")))
        .chain(
            crate::plan::WindowFunc::NAMES
                .iter()
                .map(|n| (*n, "window")),
        )
        .chain(TABLE_FUNCTIONS.iter().map(|n| (*n, "table")))
        .collect();
    rows.sort_unstable();
    let schema = Arc::new(Schema::new(vec![
        Field::new("function_name", DataType::Utf8, false),
        Field::new("function_type", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
        ],
    )?;
    Ok(crate::catalog::MemTable::new(schema, vec![batch]))
}

fn one_row_batch() -> RecordBatch {
    let opts = RecordBatchOptions::new().with_row_count(Some(1));
    RecordBatch::try_new_with_options(Arc::new(Schema::empty()), vec![], &opts)
        .unwrap_or_else(|_| RecordBatch::new_empty(Arc::new(Schema::empty())))
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

pub(super) fn scan_of(
    name: &str,
    provider: Arc<dyn TableProvider>,
    qualifier: Option<&str>,
) -> Bound {
    let schema = provider.schema();
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    Bound {
        plan: LogicalPlan::Scan(Scan {
            table_name: name.to_string(),
            projection: (0..schema.fields().len()).collect(),
            provider,
            filters: vec![],
            schema,
        }),
        scope: Scope::new(qualifier, names),
    }
}

/// `dir/lineitem.parquet` is referred to as `lineitem`.
fn base_name(path: &str) -> String {
    let file = path.rsplit(['/', '\\']).next().unwrap_or(path);
    file.split('.').next().unwrap_or(file).to_string()
}

fn apply_alias(bound: Bound, alias: Option<&ast::TableAlias>) -> Result<Bound> {
    let Some(alias) = alias else { return Ok(bound) };
    let mut scope = bound.scope.requalify(&alias.name.value);
    if !alias.columns.is_empty() {
        // (the columns of `*`: not a USING join's hidden right column)
        let visible = scope.columns.iter().filter(|c| !c.hidden).count();
        if alias.columns.len() > visible {
            return Err(QuarryError::plan(format!(
                "alias {} names {} columns but the table has {}",
                alias.name,
                alias.columns.len(),
                visible
            )));
        }
        let columns = scope.columns.iter_mut().filter(|c| !c.hidden);
        for (c, a) in columns.zip(&alias.columns) {
            c.name = a.name.value.clone();
        }
    }
    Ok(Bound {
        plan: bound.plan,
        scope,
    })
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
    use super::TABLE_FUNCTIONS;
    use crate::session::{Session, SessionConfig};
    use crate::sql::expr::{AGGREGATES, SCALARS, SPECIAL_FORMS};

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
