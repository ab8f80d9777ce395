//! FROM: its items (tables, files, table functions, derived tables,
//! parenthesized joins), the joins between them, and what an item may read
//! of the items before it and of the query around.

use std::sync::Arc;

use arrow::datatypes::{DataType, Schema};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion_common::ScalarValue;
use sqlparser::ast::{self, FunctionArg, FunctionArgExpr, Spanned, TableFactor};

use super::binder::{Binder, Bound};
use super::expr::{ExprBinder, OuterRef};
use super::lateral::{absorb_far, is_lateral, layered, OuterScope};
use super::location_of;
use super::scope::Scope;
use crate::catalog::{open_table, CatalogEntry, JsonFormat, JsonTable, Series, TableProvider};
use crate::error::{QuarryError, Result};
use crate::plan::logical::Scan;
use crate::plan::{Expr, JoinKind, LogicalPlan};

impl Binder<'_> {
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
pub(super) const TABLE_FUNCTIONS: &[&str] = &[
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

pub(super) fn one_row_batch() -> RecordBatch {
    let opts = RecordBatchOptions::new().with_row_count(Some(1));
    RecordBatch::try_new_with_options(Arc::new(Schema::empty()), vec![], &opts)
        .unwrap_or_else(|_| RecordBatch::new_empty(Arc::new(Schema::empty())))
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
