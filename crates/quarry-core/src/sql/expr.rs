//! Binding AST expressions to typed `Expr`s over a scope.

use arrow::datatypes::{DataType, Schema};
use datafusion_common::ScalarValue;
use sqlparser::ast::{
    self, BinaryOperator, CastKind, DateTimeField, FunctionArg, FunctionArgExpr, FunctionArguments,
    Spanned, UnaryOperator, Value,
};

use std::cell::RefCell;

use super::binder::Binder;
use super::coerce::{binary, comparison_type};
use super::location_of;
use super::scope::Scope;
use super::subquery::PendingSubquery;
use crate::catalog::closest;
use crate::error::{Location, QuarryError, Result};
use crate::plan::expr::{AggParam, Quantile};
use crate::plan::expr::{DatePart, TrimSide};
use crate::plan::types::{is_string, sql_type_name};
use crate::plan::{AggFunc, AggregateExpr, BinaryOp, Expr, ScalarFunc};

pub(crate) const AGGREGATES: &[&str] = &[
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "var_samp",
    "variance",
    "var_pop",
    "stddev_samp",
    "stddev",
    "stddev_pop",
    "bool_and",
    "bool_or",
    "string_agg",
    "listagg",
    "arg_min",
    "arg_max",
    "min_by",
    "max_by",
    "argmin",
    "argmax",
    "median",
    "quantile_cont",
    "quantile_disc",
    "approx_count_distinct",
];
/// Functions called by name (besides the SQL forms of `SPECIAL_FORMS`).
pub(crate) const SCALARS: &[&str] = &[
    "abs",
    "round",
    "upper",
    "lower",
    "length",
    "coalesce",
    "substring",
    "substr",
    "concat",
    "replace",
    "split_part",
    "regexp_matches",
    "regexp_full_match",
    "regexp_replace",
    "regexp_extract",
    "current_date",
    "today",
    "make_date",
    "trim",
    "ltrim",
    "rtrim",
    "starts_with",
    "ends_with",
    "contains",
    "strpos",
    "instr",
    "left",
    "right",
    "repeat",
    "reverse",
    "lpad",
    "rpad",
    "nullif",
    "greatest",
    "least",
    "sqrt",
    "pow",
    "power",
    "exp",
    "ln",
    "log",
    "log10",
    "floor",
    "ceil",
    "ceiling",
    "sign",
    "mod",
    "grouping",
    "grouping_id",
];
/// Scalar functions with a syntax of their own: `CAST(x AS t)`,
/// `TRY_CAST(x AS t)`, `EXTRACT(part FROM d)`, `POSITION(s IN t)`.
pub(crate) const SPECIAL_FORMS: &[&str] = &["cast", "try_cast", "extract", "position"];

pub struct ExprBinder<'a> {
    pub scope: &'a Scope,
    pub schema: &'a Schema,
    /// Whether aggregate calls are allowed here (SELECT, HAVING, ORDER BY).
    pub allow_aggregates: bool,
    /// Binds the subqueries met in expressions; None where none are allowed.
    pub subqueries: Option<&'a Binder<'a>>,
    /// The enclosing query, for the columns of a correlated subquery.
    pub outer: Option<OuterRef<'a>>,
    /// Subqueries met so far, to be joined in by the caller.
    pub pending: RefCell<Vec<PendingSubquery>>,
    /// How deep in an expression `bind` is now.
    pub depth: std::cell::Cell<usize>,
    /// Whether window function calls are allowed here (SELECT, QUALIFY,
    /// ORDER BY; not inside another window call).
    pub allow_windows: std::cell::Cell<bool>,
    /// SELECT-list names an identifier that is no column may stand for
    /// (QUALIFY `r = 1` with `… AS r`), each with its bound expression.
    pub aliases: RefCell<Vec<(String, Expr)>>,
    /// The windows of the query's WINDOW clause, by name.
    pub named_windows: Vec<(String, ast::NamedWindowExpr)>,
    /// Subqueries met in aggregates' arguments: they join the rows before
    /// the aggregation (the others of an aggregating query join after it).
    pub aggregate_input_subqueries: RefCell<Vec<PendingSubquery>>,
}

/// An aggregate call's parts beside its name.
#[derive(Clone, Copy)]
pub(super) struct AggregateCall<'c> {
    pub args: &'c [FunctionArg],
    pub distinct: bool,
    /// `FILTER (WHERE …)`
    pub filter: Option<&'c ast::Expr>,
    /// string_agg's `ORDER BY` inside the call
    pub order_by: &'c [ast::OrderByExpr],
}

/// An aggregate call's `ORDER BY` inside its arguments, when that is its
/// only clause (`string_agg(x, ',' ORDER BY y)`).
pub(super) fn aggregate_order(f: &ast::Function) -> Option<&[ast::OrderByExpr]> {
    match &f.args {
        FunctionArguments::List(l) => match l.clauses.as_slice() {
            [ast::FunctionArgumentClause::OrderBy(keys)] => Some(keys),
            _ => None,
        },
        _ => None,
    }
}

/// The deepest expression bound (as DuckDB's `max_expression_depth`): the
/// passes after the binder recurse too, on worker threads' stacks.
pub const MAX_EXPRESSION_DEPTH: usize = 1000;

/// The scope of the query enclosing a subquery.
#[derive(Clone, Copy)]
pub struct OuterRef<'a> {
    pub scope: &'a Scope,
    pub schema: &'a Schema,
}

impl<'a> ExprBinder<'a> {
    /// A binder of plain expressions: no aggregates, no subqueries.
    pub fn new(scope: &'a Scope, schema: &'a Schema) -> Self {
        ExprBinder {
            scope,
            schema,
            allow_aggregates: false,
            subqueries: None,
            outer: None,
            pending: RefCell::new(vec![]),
            depth: std::cell::Cell::new(0),
            allow_windows: std::cell::Cell::new(false),
            aliases: RefCell::new(vec![]),
            named_windows: vec![],
            aggregate_input_subqueries: RefCell::new(vec![]),
        }
    }

    /// Resolves a column in this scope, else a SELECT-list name where
    /// those are allowed, else a column of the enclosing query.
    fn column(&self, qualifier: Option<&str>, ident: &ast::Ident) -> Result<Expr> {
        if qualifier.is_none() && self.scope.resolve(None, &ident.value, None).is_err() {
            let aliases = self.aliases.borrow();
            if let Some((_, e)) = aliases
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(&ident.value))
            {
                return Ok(e.clone());
            }
        }
        match self
            .scope
            .resolve(qualifier, &ident.value, location_of(ident.span))
        {
            Ok(i) => Ok(Expr::Column(i)),
            Err(inner_err) => match &self.outer {
                Some(o) => {
                    let found = o.scope.resolve(qualifier, &ident.value, None).ok();
                    let found = found.or_else(|| match qualifier {
                        None => o.scope.forwarded(&ident.value),
                        Some(_) => None,
                    });
                    match found {
                        Some(i) => Ok(Expr::OuterColumn {
                            index: i,
                            data_type: o.schema.field(i).data_type().clone(),
                        }),
                        None => {
                            // a query further out may have it: the statement
                            // is bound again with it carried down
                            if let Some(binder) = self.subqueries {
                                binder.note_far_column(qualifier, &ident.value);
                            }
                            // (`t.nope` where only the outer query has a
                            // t: its error, naming t's columns)
                            match qualifier {
                                Some(q)
                                    if !self.scope.has_qualifier(q) && o.scope.has_qualifier(q) =>
                                {
                                    o.scope
                                        .resolve(qualifier, &ident.value, location_of(ident.span))
                                        .map(|_| ())
                                        .and(Err(inner_err))
                                }
                                _ => Err(inner_err),
                            }
                        }
                    }
                }
                None => Err(inner_err),
            },
        }
    }

    /// Binds a subquery used as a value: scalar, or `x IN (…)` as a boolean.
    fn subquery_value(&self, e: &ast::Expr) -> Result<Expr> {
        let binder = self
            .subqueries
            .ok_or_else(|| QuarryError::plan_at("subqueries are not allowed here", at(e)))?;
        // Its outer query is this one, not a LATERAL's left side.
        binder.with_correlated(None, || self.bind_subquery_value(binder, e))
    }

    fn bind_subquery_value(&self, binder: &Binder<'_>, e: &ast::Expr) -> Result<Expr> {
        let outer = OuterRef {
            scope: self.scope,
            schema: self.schema,
        };
        let pending = match e {
            ast::Expr::Subquery(q) => binder.bind_scalar_subquery(q, outer)?,
            ast::Expr::InSubquery {
                expr,
                subquery,
                negated,
            } => {
                let lhs = self.bind(expr)?;
                let p = binder.bind_in_subquery_value(lhs, expr, subquery, outer, at(e))?;
                if *negated {
                    let id = p.id;
                    self.pending.borrow_mut().push(p);
                    return Ok(Expr::Not(Box::new(Expr::SubqueryRef {
                        id,
                        data_type: DataType::Boolean,
                    })));
                }
                p
            }
            ast::Expr::Exists { subquery, negated } => {
                let p = binder.bind_exists_value(subquery, outer)?;
                let r = Expr::SubqueryRef {
                    id: p.id,
                    data_type: DataType::Boolean,
                };
                self.pending.borrow_mut().push(p);
                return Ok(if *negated { Expr::Not(Box::new(r)) } else { r });
            }
            _ => return Err(QuarryError::plan_at("unsupported subquery", at(e))),
        };
        let r = Expr::SubqueryRef {
            id: pending.id,
            data_type: pending.data_type.clone(),
        };
        self.pending.borrow_mut().push(pending);
        Ok(r)
    }
}

fn at(e: &ast::Expr) -> Option<Location> {
    location_of(e.span())
}

impl ExprBinder<'_> {
    pub fn bind(&self, e: &ast::Expr) -> Result<Expr> {
        let depth = self.depth.get() + 1;
        if depth > MAX_EXPRESSION_DEPTH {
            // (no place: finding it would walk the deep subtree again)
            return Err(QuarryError::plan(format!(
                "expression nested too deeply (more than {MAX_EXPRESSION_DEPTH} levels)"
            )));
        }
        self.depth.set(depth);
        // Debug builds spend kilobytes of stack per level.
        let bound = stacker::maybe_grow(256 * 1024, 4 * 1024 * 1024, || self.bind_expr(e));
        self.depth.set(depth - 1);
        bound
    }

    fn bind_expr(&self, e: &ast::Expr) -> Result<Expr> {
        match e {
            ast::Expr::Identifier(id) => self.column(None, id),
            ast::Expr::CompoundIdentifier(ids) => {
                let (name, quals) = ids
                    .split_last()
                    .ok_or_else(|| QuarryError::plan("empty identifier"))?;
                self.column(quals.last().map(|q| q.value.as_str()), name)
            }
            ast::Expr::Value(v) => literal(&v.value, at(e)),
            ast::Expr::Nested(inner) => self.bind(inner),
            ast::Expr::BinaryOp { left, op, right } => {
                // The place is found only on failure: a span walks the whole
                // subtree, which in a long chain of operators costs O(n²).
                let op = binary_op(op, None).map_err(|err| locate(err, e))?;
                let l = self.bind(left)?;
                let r = self.bind(right)?;
                let (lt, rt) = (self.type_of(&l)?, self.type_of(&r)?);
                binary(op, l, lt, r, rt, None).map_err(|err| locate(err, e))
            }
            ast::Expr::UnaryOp { op, expr } => {
                let inner = self.bind(expr)?;
                let t = self.type_of(&inner)?;
                match op {
                    UnaryOperator::Not => {
                        self.expect_boolean(&t, "NOT", at(e))?;
                        let inner = if t == DataType::Null {
                            inner.cast(DataType::Boolean)
                        } else {
                            inner
                        };
                        Ok(Expr::Not(Box::new(inner)))
                    }
                    UnaryOperator::Minus => {
                        if matches!(t, DataType::Interval(_)) {
                            // (arrow's negation of intervals is not checked)
                            let minus_one = Expr::Literal(ScalarValue::Int64(Some(-1)));
                            return Ok(Expr::binary(BinaryOp::Multiply, inner, minus_one));
                        }
                        if !crate::plan::types::is_numeric(&t) && t != DataType::Null {
                            return Err(QuarryError::plan_at(
                                format!("cannot negate a value of type {}", sql_type_name(&t)),
                                at(e),
                            ));
                        }
                        Ok(Expr::Negative(Box::new(inner)))
                    }
                    UnaryOperator::Plus => Ok(inner),
                    other => Err(QuarryError::plan_at(
                        format!("unsupported operator {other}"),
                        at(e),
                    )),
                }
            }
            ast::Expr::IsNull(inner) => Ok(Expr::IsNull(Box::new(self.bind(inner)?))),
            ast::Expr::IsNotNull(inner) => Ok(Expr::IsNotNull(Box::new(self.bind(inner)?))),
            ast::Expr::IsTrue(inner)
            | ast::Expr::IsFalse(inner)
            | ast::Expr::IsNotTrue(inner)
            | ast::Expr::IsNotFalse(inner) => {
                let v = self.bind(inner)?;
                let want = matches!(e, ast::Expr::IsTrue(_) | ast::Expr::IsNotFalse(_));
                let negate = matches!(e, ast::Expr::IsNotTrue(_) | ast::Expr::IsNotFalse(_));
                // x IS TRUE is never NULL: coalesce(x = true, false)
                let eq = Expr::Function {
                    func: ScalarFunc::Coalesce,
                    args: vec![
                        Expr::binary(
                            BinaryOp::Eq,
                            v,
                            Expr::Literal(ScalarValue::Boolean(Some(want))),
                        ),
                        Expr::Literal(ScalarValue::Boolean(Some(false))),
                    ],
                    data_type: DataType::Boolean,
                };
                Ok(if negate { Expr::Not(Box::new(eq)) } else { eq })
            }
            ast::Expr::Between {
                expr,
                negated,
                low,
                high,
            } => {
                let v = self.bind(expr)?;
                let lo = self.bind(low)?;
                let hi = self.bind(high)?;
                let vt = self.type_of(&v)?;
                let ge = binary(
                    BinaryOp::GtEq,
                    v.clone(),
                    vt.clone(),
                    lo.clone(),
                    self.type_of(&lo)?,
                    at(e),
                )?;
                let le = binary(BinaryOp::LtEq, v, vt, hi.clone(), self.type_of(&hi)?, at(e))?;
                let both = Expr::binary(BinaryOp::And, ge, le);
                Ok(if *negated {
                    Expr::Not(Box::new(both))
                } else {
                    both
                })
            }
            ast::Expr::InList {
                expr,
                list,
                negated,
            } => {
                let v = self.bind(expr)?;
                let mut t = self.type_of(&v)?;
                let items = list
                    .iter()
                    .map(|i| self.bind(i))
                    .collect::<Result<Vec<_>>>()?;
                for item in &items {
                    t = comparison_type(&v, &t, item, &self.type_of(item)?, at(e))?;
                }
                let cast = |x: Expr, b: &Self| -> Result<Expr> {
                    let xt = b.type_of(&x)?;
                    Ok(if xt == t { x } else { x.cast(t.clone()) })
                };
                Ok(Expr::InList {
                    expr: Box::new(cast(v, self)?),
                    list: items
                        .into_iter()
                        .map(|i| cast(i, self))
                        .collect::<Result<_>>()?,
                    negated: *negated,
                })
            }
            ast::Expr::Like {
                negated,
                expr,
                pattern,
                escape_char,
                any,
            }
            | ast::Expr::ILike {
                negated,
                expr,
                pattern,
                escape_char,
                any,
            } => {
                if escape_char.is_some() || *any {
                    return Err(QuarryError::plan_at(
                        "LIKE … ESCAPE and LIKE ANY are not supported",
                        at(e),
                    ));
                }
                let v = self.bind(expr)?;
                let p = self.bind(pattern)?;
                let (vt, pt) = (self.type_of(&v)?, self.type_of(&p)?);
                for t in [&vt, &pt] {
                    if !is_string(t) && *t != DataType::Null {
                        return Err(QuarryError::plan_at(
                            format!("LIKE needs VARCHAR operands, got {}", sql_type_name(t)),
                            at(e),
                        ));
                    }
                }
                // Both sides of the kernel must have the same string type.
                let p = if pt != vt { p.cast(vt.clone()) } else { p };
                Ok(Expr::Like {
                    expr: Box::new(v),
                    pattern: Box::new(p),
                    negated: *negated,
                    case_insensitive: matches!(e, ast::Expr::ILike { .. }),
                })
            }
            ast::Expr::Case {
                operand,
                conditions,
                else_result,
                ..
            } => self.bind_case(
                operand.as_deref(),
                conditions,
                else_result.as_deref(),
                at(e),
            ),
            ast::Expr::Cast {
                kind,
                expr,
                data_type,
                ..
            } => {
                let inner = self.bind(expr)?;
                let to = sql_data_type(data_type, at(e))?;
                if *kind == CastKind::TryCast || *kind == CastKind::SafeCast {
                    let from = self.type_of(&inner)?;
                    if !arrow::compute::can_cast_types(&from, &to) {
                        return Err(QuarryError::plan_at(
                            format!(
                                "cannot cast {} to {}",
                                sql_type_name(&from),
                                sql_type_name(&to)
                            ),
                            at(e),
                        ));
                    }
                    return Ok(Expr::Function {
                        func: ScalarFunc::TryCast,
                        args: vec![inner],
                        data_type: to,
                    });
                }
                Ok(inner.cast(to))
            }
            ast::Expr::TypedString(ts) => {
                let text = match &ts.value.value {
                    Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
                    other => other.to_string(),
                };
                let t = sql_data_type(&ts.data_type, at(e))?;
                if matches!(t, DataType::Timestamp(_, _)) {
                    return super::temporal::timestamp_literal(&text, &t, at(e));
                }
                let v = ScalarValue::Utf8(Some(text.clone()))
                    .cast_to(&t)
                    .map_err(|_| {
                        QuarryError::plan_at(
                            format!("invalid {} literal '{text}'", sql_type_name(&t)),
                            at(e),
                        )
                    })?;
                Ok(Expr::Literal(v))
            }
            ast::Expr::Interval(iv) => super::temporal::interval(iv, at(e)),
            ast::Expr::Extract { field, expr, .. } => {
                let name = match field {
                    DateTimeField::Custom(ident) => ident.value.clone(),
                    other => other.to_string(),
                };
                let part = DatePart::from_name(&name).ok_or_else(|| {
                    QuarryError::plan_at(format!("extract({field}) is not supported"), at(e))
                })?;
                let v = self.bind(expr)?;
                self.extract(part, v, "extract", at(e))
            }
            ast::Expr::Trim {
                trim_where,
                trim_what,
                expr,
                trim_characters,
            } => {
                let side = match trim_where {
                    None | Some(ast::TrimWhereField::Both) => TrimSide::Both,
                    Some(ast::TrimWhereField::Leading) => TrimSide::Leading,
                    Some(ast::TrimWhereField::Trailing) => TrimSide::Trailing,
                };
                let mut args = vec![self.bind(expr)?];
                match (trim_what, trim_characters.as_deref()) {
                    (Some(what), None) => args.push(self.bind(what)?),
                    (None, Some([chars])) => args.push(self.bind(chars)?),
                    (None, None) => {}
                    _ => {
                        return Err(QuarryError::plan_at(
                            "trim takes a string and the characters to remove",
                            at(e),
                        ))
                    }
                }
                self.scalar_function(ScalarFunc::Trim(side), args, at(e))
            }
            ast::Expr::Floor { expr, field } | ast::Expr::Ceil { expr, field } => {
                let func = if matches!(e, ast::Expr::Floor { .. }) {
                    ScalarFunc::Floor
                } else {
                    ScalarFunc::Ceil
                };
                if !matches!(
                    field,
                    ast::CeilFloorKind::DateTimeField(ast::DateTimeField::NoDateTime)
                ) {
                    return Err(QuarryError::plan_at(
                        format!(
                            "{}() with a scale or a TO field is not supported",
                            func.name()
                        ),
                        at(e),
                    ));
                }
                let args = vec![self.bind(expr)?];
                self.scalar_function(func, args, at(e))
            }
            ast::Expr::Position { expr, r#in } => {
                let args = vec![self.bind(r#in)?, self.bind(expr)?];
                self.scalar_function(ScalarFunc::Strpos, args, at(e))
            }
            ast::Expr::Substring {
                expr,
                substring_from,
                substring_for,
                ..
            } => {
                if substring_from.is_none() && substring_for.is_none() {
                    return Err(QuarryError::plan_at(
                        "substring takes 2 or 3 arguments: substring(string, start [, length])",
                        at(e),
                    ));
                }
                let mut args = vec![self.bind(expr)?];
                args.push(match substring_from {
                    Some(f) => self.bind(f)?,
                    None => Expr::Literal(ScalarValue::Int64(Some(1))),
                });
                if let Some(f) = substring_for {
                    args.push(self.bind(f)?);
                }
                self.scalar_function(ScalarFunc::Substring, args, at(e))
            }
            ast::Expr::Function(f) => self.bind_function(f, at(e)),
            ast::Expr::Subquery(_) | ast::Expr::Exists { .. } | ast::Expr::InSubquery { .. } => {
                self.subquery_value(e)
            }
            other => Err(QuarryError::plan_at(
                format!("unsupported expression: {other}"),
                at(e),
            )),
        }
    }

    pub fn type_of(&self, e: &Expr) -> Result<DataType> {
        e.data_type(self.schema)
    }

    fn expect_boolean(&self, t: &DataType, what: &str, at: Option<Location>) -> Result<()> {
        if matches!(t, DataType::Boolean | DataType::Null) {
            Ok(())
        } else {
            Err(QuarryError::plan_at(
                format!("{what} needs a BOOLEAN, got {}", sql_type_name(t)),
                at,
            ))
        }
    }

    /// Binds a predicate (WHERE, HAVING, ON) and checks it is boolean.
    pub fn bind_predicate(&self, e: &ast::Expr, clause: &str) -> Result<Expr> {
        let p = self.bind(e)?;
        let t = self.type_of(&p)?;
        self.expect_boolean(&t, clause, at(e))?;
        Ok(p)
    }

    fn bind_case(
        &self,
        operand: Option<&ast::Expr>,
        conditions: &[ast::CaseWhen],
        else_result: Option<&ast::Expr>,
        loc: Option<Location>,
    ) -> Result<Expr> {
        let operand = operand.map(|o| self.bind(o)).transpose()?;
        let mut branches = Vec::new();
        for cw in conditions {
            let cond = match &operand {
                // CASE x WHEN v THEN … is CASE WHEN x = v THEN …
                Some(o) => {
                    let v = self.bind(&cw.condition)?;
                    binary(
                        BinaryOp::Eq,
                        o.clone(),
                        self.type_of(o)?,
                        v.clone(),
                        self.type_of(&v)?,
                        loc,
                    )?
                }
                None => self.bind_predicate(&cw.condition, "CASE WHEN")?,
            };
            branches.push((cond, self.bind(&cw.result)?));
        }
        let else_expr = else_result.map(|e| self.bind(e)).transpose()?;
        // The result type: all branches meet at one type.
        let mut t = DataType::Null;
        let mut prev = Expr::Literal(ScalarValue::Null);
        for r in branches.iter().map(|(_, r)| r).chain(else_expr.iter()) {
            t = comparison_type(&prev, &t, r, &self.type_of(r)?, loc)?;
            prev = r.clone();
        }
        let fix = |x: Expr| -> Result<Expr> {
            let xt = self.type_of(&x)?;
            Ok(if xt == t { x } else { x.cast(t.clone()) })
        };
        Ok(Expr::Case {
            branches: branches
                .into_iter()
                .map(|(c, r)| Ok((c, fix(r)?)))
                .collect::<Result<_>>()?,
            else_expr: else_expr.map(fix).transpose()?.map(Box::new),
            data_type: t,
        })
    }

    fn bind_function(&self, f: &ast::Function, loc: Option<Location>) -> Result<Expr> {
        let name = f.name.to_string().to_lowercase();
        if f.over.is_some() {
            return self.bind_window(f, &name, loc);
        }
        // Clauses that change what a function computes: refuse, not ignore.
        let clauses = match &f.args {
            FunctionArguments::List(list) => !list.clauses.is_empty(),
            _ => false,
        };
        let is_aggregate = AGGREGATES.contains(&name.as_str());
        let order_by = match is_aggregate {
            true => aggregate_order(f).unwrap_or(&[]),
            false => &[],
        };
        let clauses = clauses && order_by.is_empty();
        let unsupported = [
            (f.filter.is_some() && !is_aggregate, "FILTER (WHERE …)"),
            (f.null_treatment.is_some(), "IGNORE/RESPECT NULLS"),
            (!f.within_group.is_empty(), "WITHIN GROUP"),
            (
                !matches!(f.parameters, FunctionArguments::None),
                "parameters",
            ),
            (clauses, "ORDER BY, LIMIT or other clauses in the arguments"),
        ];
        if let Some((_, what)) = unsupported.iter().find(|(present, _)| *present) {
            return Err(QuarryError::plan_at(
                format!("{what} in a call of {name} is not supported"),
                loc,
            ));
        }
        let (args, distinct) = match &f.args {
            FunctionArguments::None => (vec![], false),
            FunctionArguments::Subquery(_) => {
                return Err(QuarryError::plan_at(
                    "subqueries are not supported yet",
                    loc,
                ))
            }
            FunctionArguments::List(list) => (
                list.args.clone(),
                matches!(
                    list.duplicate_treatment,
                    Some(ast::DuplicateTreatment::Distinct)
                ),
            ),
        };
        if is_aggregate {
            if !self.allow_aggregates {
                return Err(QuarryError::plan_at(
                    format!("aggregate function {name}() is not allowed here"),
                    loc,
                ));
            }
            let call = AggregateCall {
                args: &args,
                distinct,
                filter: f.filter.as_deref(),
                order_by,
            };
            return self.bind_aggregate(&name, call, false, loc);
        }
        let bound = args
            .iter()
            .map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => self.bind(e),
                other => Err(QuarryError::plan_at(
                    format!("unsupported function argument {other}"),
                    loc,
                )),
            })
            .collect::<Result<Vec<_>>>()?;
        let func = match name.as_str() {
            "grouping" | "grouping_id" => {
                if !self.allow_aggregates {
                    return Err(QuarryError::plan_at(
                        format!("{name}() is allowed only in the SELECT list, HAVING and ORDER BY of a query with GROUP BY"),
                        loc,
                    ));
                }
                if bound.is_empty() {
                    return Err(QuarryError::plan_at(
                        format!("{name}() takes at least one argument"),
                        loc,
                    ));
                }
                return Ok(Expr::Function {
                    func: ScalarFunc::Grouping,
                    args: bound,
                    data_type: DataType::Int64,
                });
            }
            "abs" => ScalarFunc::Abs,
            "round" => ScalarFunc::Round,
            "upper" => ScalarFunc::Upper,
            "lower" => ScalarFunc::Lower,
            "length" => ScalarFunc::Length,
            "coalesce" => ScalarFunc::Coalesce,
            "substring" | "substr" => ScalarFunc::Substring,
            "concat" => ScalarFunc::Concat,
            "replace" => ScalarFunc::Replace,
            "split_part" => ScalarFunc::SplitPart,
            "regexp_matches" => ScalarFunc::RegexpMatches,
            "regexp_full_match" => ScalarFunc::RegexpFullMatch,
            "regexp_replace" => ScalarFunc::RegexpReplace,
            "regexp_extract" => ScalarFunc::RegexpExtract,
            // (bare `current_date` and `current_timestamp` come here too, calls
            // without arguments)
            "current_date" | "today" => {
                if !bound.is_empty() {
                    return Err(QuarryError::plan_at(
                        format!("{name}() takes no arguments"),
                        loc,
                    ));
                }
                // bound once per query, so one value for all its rows: the
                // UTC date when the query was planned
                return Ok(Expr::Literal(ScalarValue::Date32(Some(utc_today()?))));
            }
            n if super::temporal::TEMPORAL_FUNCTIONS.contains(&n) => {
                return self.temporal_function(n, bound, loc);
            }
            "trim" => ScalarFunc::Trim(TrimSide::Both),
            "ltrim" => ScalarFunc::Trim(TrimSide::Leading),
            "rtrim" => ScalarFunc::Trim(TrimSide::Trailing),
            "starts_with" => ScalarFunc::StartsWith,
            "ends_with" => ScalarFunc::EndsWith,
            "contains" => ScalarFunc::Contains,
            "strpos" | "instr" => ScalarFunc::Strpos,
            "left" => ScalarFunc::Left,
            "right" => ScalarFunc::Right,
            "repeat" => ScalarFunc::Repeat,
            "reverse" => ScalarFunc::Reverse,
            "lpad" => ScalarFunc::Lpad,
            "rpad" => ScalarFunc::Rpad,
            "nullif" => ScalarFunc::NullIf,
            "greatest" => ScalarFunc::Greatest,
            "least" => ScalarFunc::Least,
            "sqrt" => ScalarFunc::Sqrt,
            "pow" | "power" => ScalarFunc::Power,
            "exp" => ScalarFunc::Exp,
            "ln" => ScalarFunc::Ln,
            "log" | "log10" => ScalarFunc::Log10,
            "floor" => ScalarFunc::Floor,
            "ceil" | "ceiling" => ScalarFunc::Ceil,
            "sign" => ScalarFunc::Sign,
            "make_date" => ScalarFunc::MakeDate,
            "mod" => {
                if bound.len() != 2 {
                    return Err(QuarryError::plan_at(
                        format!("mod() takes 2 arguments, got {}", bound.len()),
                        loc,
                    ));
                }
                let mut it = bound.into_iter();
                let (l, r) = (it.next(), it.next());
                let (Some(l), Some(r)) = (l, r) else {
                    return Err(QuarryError::plan_at("mod() takes 2 arguments", loc));
                };
                let (lt, rt) = (self.type_of(&l)?, self.type_of(&r)?);
                return super::coerce::binary(BinaryOp::Modulo, l, lt, r, rt, loc);
            }
            _ if crate::plan::WindowFunc::by_name(&name).is_some() => {
                return Err(QuarryError::plan_at(
                    format!("{name}() is a window function: it needs an OVER clause"),
                    loc,
                ));
            }
            _ => {
                let known = AGGREGATES
                    .iter()
                    .chain(SCALARS)
                    .chain(super::temporal::TEMPORAL_FUNCTIONS);
                let hint = closest(&name, known.copied())
                    .map(|c| format!(", did you mean '{c}'?"))
                    .unwrap_or_default();
                return Err(QuarryError::plan_at(
                    format!("unknown function '{name}'{hint}"),
                    loc,
                ));
            }
        };
        self.scalar_function(func, bound, loc)
    }

    /// Checks arguments and decides the result type of a scalar function.
    fn scalar_function(
        &self,
        func: ScalarFunc,
        mut args: Vec<Expr>,
        loc: Option<Location>,
    ) -> Result<Expr> {
        let types = args
            .iter()
            .map(|a| self.type_of(a))
            .collect::<Result<Vec<_>>>()?;
        let name = func.name();
        let arity = |lo: usize, hi: usize| -> Result<()> {
            if args.len() < lo || args.len() > hi {
                let want = if lo == hi {
                    format!("{lo}")
                } else if hi == usize::MAX {
                    format!("at least {lo}")
                } else {
                    format!("{lo} to {hi}")
                };
                Err(QuarryError::plan_at(
                    format!(
                        "{name}() takes {want} argument{}, got {}",
                        if hi == 1 || (lo == 1 && hi == usize::MAX) {
                            ""
                        } else {
                            "s"
                        },
                        args.len()
                    ),
                    loc,
                ))
            } else {
                Ok(())
            }
        };
        let wrong = |t: &DataType| {
            QuarryError::plan_at(
                format!("{name}() is not defined for {}", sql_type_name(t)),
                loc,
            )
        };
        let data_type = match func {
            ScalarFunc::Abs => {
                arity(1, 1)?;
                if !crate::plan::types::is_numeric(&types[0]) {
                    return Err(wrong(&types[0]));
                }
                types[0].clone()
            }
            ScalarFunc::Round => {
                arity(1, 2)?;
                if !crate::plan::types::is_numeric(&types[0]) {
                    return Err(wrong(&types[0]));
                }
                if args.len() == 2 && !types[1].is_integer() {
                    return Err(wrong(&types[1]));
                }
                if types[0].is_integer() {
                    DataType::Int64
                } else {
                    types[0].clone()
                }
            }
            ScalarFunc::Upper | ScalarFunc::Lower => {
                arity(1, 1)?;
                if !is_string(&types[0]) {
                    return Err(wrong(&types[0]));
                }
                DataType::Utf8
            }
            ScalarFunc::Length => {
                arity(1, 1)?;
                if !is_string(&types[0]) {
                    return Err(wrong(&types[0]));
                }
                DataType::Int64
            }
            ScalarFunc::Substring => {
                arity(2, 3)?;
                if !is_string(&types[0]) {
                    return Err(wrong(&types[0]));
                }
                if let Some(t) = types[1..].iter().find(|t| !t.is_integer()) {
                    return Err(wrong(t));
                }
                DataType::Utf8
            }
            ScalarFunc::Extract(_)
            | ScalarFunc::DateTrunc(_)
            | ScalarFunc::Strftime
            | ScalarFunc::Strptime
            | ScalarFunc::Age
            | ScalarFunc::MakeTimestamp
            | ScalarFunc::EpochMs
            | ScalarFunc::ToTimestamp
            | ScalarFunc::Epoch => {
                return Err(QuarryError::plan_at(
                    format!("internal error: {name}() is bound by the date functions"),
                    loc,
                ))
            }
            ScalarFunc::AssertSingleRow => types[1].clone(),
            ScalarFunc::AverageOf => DataType::Float64,
            ScalarFunc::Grouping => DataType::Int64,
            // (made by the binder for arg_min / arg_max, never by name)
            ScalarFunc::Row => DataType::Struct(
                types
                    .iter()
                    .enumerate()
                    .map(|(i, t)| arrow::datatypes::Field::new(format!("f{i}"), t.clone(), true))
                    .collect(),
            ),
            // (bound by the CAST syntax, never by name)
            ScalarFunc::TryCast => {
                return Err(QuarryError::plan_at("use TRY_CAST(x AS type)", loc));
            }
            ScalarFunc::Concat => {
                arity(1, usize::MAX)?;
                DataType::Utf8
            }
            ScalarFunc::Replace
            | ScalarFunc::Trim(_)
            | ScalarFunc::StartsWith
            | ScalarFunc::EndsWith
            | ScalarFunc::Contains
            | ScalarFunc::Strpos
            | ScalarFunc::Reverse => {
                match func {
                    ScalarFunc::Replace => arity(3, 3)?,
                    ScalarFunc::Trim(_) => arity(1, 2)?,
                    ScalarFunc::Reverse => arity(1, 1)?,
                    _ => arity(2, 2)?,
                }
                if let Some(t) = types.iter().find(|t| !is_text(t)) {
                    return Err(wrong(t));
                }
                match func {
                    ScalarFunc::StartsWith | ScalarFunc::EndsWith | ScalarFunc::Contains => {
                        DataType::Boolean
                    }
                    ScalarFunc::Strpos => DataType::Int64,
                    _ => DataType::Utf8,
                }
            }
            ScalarFunc::RegexpMatches
            | ScalarFunc::RegexpFullMatch
            | ScalarFunc::RegexpReplace
            | ScalarFunc::RegexpExtract => {
                match func {
                    ScalarFunc::RegexpReplace => arity(3, 4)?,
                    ScalarFunc::RegexpExtract => arity(2, 4)?,
                    _ => arity(2, 3)?,
                }
                self.regex_arguments(func, &mut args, &types, loc)?;
                match func {
                    ScalarFunc::RegexpMatches | ScalarFunc::RegexpFullMatch => DataType::Boolean,
                    _ => DataType::Utf8,
                }
            }
            ScalarFunc::SplitPart => {
                arity(3, 3)?;
                if let Some(t) = types[..2].iter().find(|t| !is_text(t)) {
                    return Err(wrong(t));
                }
                if !is_count(&types[2]) {
                    return Err(wrong(&types[2]));
                }
                DataType::Utf8
            }
            ScalarFunc::Left | ScalarFunc::Right | ScalarFunc::Repeat => {
                arity(2, 2)?;
                if !is_text(&types[0]) {
                    return Err(wrong(&types[0]));
                }
                if !is_count(&types[1]) {
                    return Err(wrong(&types[1]));
                }
                DataType::Utf8
            }
            ScalarFunc::Lpad | ScalarFunc::Rpad => {
                arity(3, 3)?;
                if !is_text(&types[0]) || !is_text(&types[2]) {
                    return Err(wrong(if is_text(&types[0]) {
                        &types[2]
                    } else {
                        &types[0]
                    }));
                }
                if !is_count(&types[1]) {
                    return Err(wrong(&types[1]));
                }
                DataType::Utf8
            }
            // the arguments meet at one type, as a comparison's sides do
            ScalarFunc::Coalesce
            | ScalarFunc::NullIf
            | ScalarFunc::Greatest
            | ScalarFunc::Least => {
                if func == ScalarFunc::NullIf {
                    arity(2, 2)?;
                } else {
                    arity(1, usize::MAX)?;
                }
                let mut t = DataType::Null;
                let mut prev = Expr::Literal(ScalarValue::Null);
                for (a, at) in args.iter().zip(&types) {
                    t = comparison_type(&prev, &t, a, at, loc)?;
                    prev = a.clone();
                }
                args = args
                    .into_iter()
                    .zip(&types)
                    .map(|(a, at)| if *at == t { a } else { a.cast(t.clone()) })
                    .collect();
                t
            }
            ScalarFunc::MakeDate => {
                arity(3, 3)?;
                if let Some(t) = types.iter().find(|t| !t.is_integer() && !t.is_null()) {
                    return Err(wrong(t));
                }
                DataType::Date32
            }
            ScalarFunc::Sqrt
            | ScalarFunc::Exp
            | ScalarFunc::Ln
            | ScalarFunc::Log10
            | ScalarFunc::Power
            | ScalarFunc::Sign
            | ScalarFunc::Floor
            | ScalarFunc::Ceil => {
                if func == ScalarFunc::Power {
                    arity(2, 2)?;
                } else {
                    arity(1, 1)?;
                }
                if let Some(t) = types
                    .iter()
                    .find(|t| !crate::plan::types::is_numeric(t) && !t.is_null())
                {
                    return Err(wrong(t));
                }
                match (func, &types[0]) {
                    (ScalarFunc::Sign, _) => DataType::Int64,
                    (ScalarFunc::Floor | ScalarFunc::Ceil, DataType::Decimal128(p, _)) => {
                        DataType::Decimal128(*p, 0)
                    }
                    _ => DataType::Float64,
                }
            }
        };
        Ok(Expr::Function {
            func,
            args,
            data_type,
        })
    }

    /// An aggregate call; `filter` is its `FILTER (WHERE …)`: the rows it
    /// does not hold for count as NULL arguments (`count(*)` counts the
    /// rows it holds for). In a window call (`in_window`) the arguments may
    /// read the query's aggregates (`sum(sum(x)) OVER ()`).
    pub(super) fn bind_aggregate(
        &self,
        name: &str,
        call: AggregateCall<'_>,
        in_window: bool,
        loc: Option<Location>,
    ) -> Result<Expr> {
        let AggregateCall {
            args,
            distinct,
            filter,
            order_by,
        } = call;
        // No aggregate inside an aggregate.
        let bind_inner = |e: &ast::Expr| {
            if in_window {
                return self.bind(e);
            }
            // (a correlated subquery's aggregates may read the outer query;
            // a subquery in an argument joins the aggregate's input rows)
            let inner = ExprBinder {
                outer: self.outer,
                subqueries: self.subqueries,
                ..ExprBinder::new(self.scope, self.schema)
            };
            let bound = inner.bind(e);
            self.aggregate_input_subqueries
                .borrow_mut()
                .extend(inner.pending.take());
            bound.map_err(|err| match err {
                QuarryError::Plan { message, location }
                    if message.starts_with("aggregate function") =>
                {
                    QuarryError::plan_at("aggregate function calls cannot be nested", location)
                }
                other => other,
            })
        };
        // ORDER BY inside the call: string_agg joins its values in that
        // order. No other aggregate but arg_min / arg_max (whose ties it
        // would break) gives another answer for another order (floating
        // point sums may differ in the last bits), so for them the keys are
        // only checked.
        let order_by = match name {
            _ if order_by.is_empty() || matches!(name, "string_agg" | "listagg") => order_by,
            "arg_min" | "arg_max" | "min_by" | "max_by" | "argmin" | "argmax" => {
                return Err(QuarryError::plan_at(
                    format!("ORDER BY inside {name}() is not supported"),
                    loc,
                ))
            }
            _ => {
                for key in order_by {
                    bind_inner(&key.expr)?;
                }
                &[]
            }
        };
        let exprs = args
            .iter()
            .map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Ok(Some(e)),
                FunctionArg::Unnamed(FunctionArgExpr::Wildcard) => Ok(None),
                other => Err(QuarryError::plan_at(
                    format!("unsupported argument {other} of {name}()"),
                    loc,
                )),
            })
            .collect::<Result<Vec<_>>>()?;
        let arity = |n: usize| -> Result<()> {
            if exprs.len() == n && exprs.iter().all(|e| e.is_some()) {
                return Ok(());
            }
            if exprs.len() == n {
                return Err(QuarryError::plan_at(
                    format!("{name}() does not take *"),
                    loc,
                ));
            }
            let what = if n == 1 {
                "exactly one argument".to_string()
            } else {
                format!("{n} arguments")
            };
            Err(QuarryError::plan_at(
                format!("{name}() takes {what}, got {}", exprs.len()),
                loc,
            ))
        };
        // The argument at `i`, bound (its place checked by `arity`).
        let bound = |i: usize| -> Result<Expr> {
            match exprs.get(i) {
                Some(Some(e)) => bind_inner(e),
                _ => Err(QuarryError::plan_at(
                    format!("{name}() is missing an argument"),
                    loc,
                )),
            }
        };
        // a type the aggregate's result becomes (median of dates)
        let mut result_cast = None;
        let (func, arg, param) = match name {
            "count" => match exprs.as_slice() {
                // count(*): Count of nothing, so that a FILTER gives it an
                // argument below (else it becomes CountStar)
                [] | [None] => (AggFunc::Count, None, None),
                _ => {
                    arity(1)?;
                    (AggFunc::Count, Some(bound(0)?), None)
                }
            },
            "string_agg" | "listagg" => {
                // the separator defaults to ',' as in DuckDB
                let separator = if exprs.len() == 1 {
                    arity(1)?;
                    Some(",".to_string())
                } else {
                    arity(2)?;
                    match self.constant_argument(bound(1)?, name, "separator", loc)? {
                        ScalarValue::Null => None,
                        ScalarValue::Utf8(s)
                        | ScalarValue::Utf8View(s)
                        | ScalarValue::LargeUtf8(s) => s,
                        _ => {
                            return Err(QuarryError::plan_at(
                                format!("the separator of {name}() must be a string"),
                                loc,
                            ))
                        }
                    }
                };
                // other values joined as their text, as in DuckDB
                let x = bound(0)?;
                let x = if is_string(&self.type_of(&x)?) {
                    x
                } else {
                    x.cast(DataType::Utf8)
                };
                if order_by.is_empty() {
                    let param = AggParam::Separator(separator);
                    (AggFunc::StringAgg, Some(x), Some(param))
                } else {
                    if distinct {
                        return Err(QuarryError::plan_at(
                            format!("{name}(DISTINCT … ORDER BY …) is not supported"),
                            loc,
                        ));
                    }
                    let keys = order_by
                        .iter()
                        .map(|o| Ok(super::binder::sort_key(bind_inner(&o.expr)?, &o.options)))
                        .collect::<Result<Vec<_>>>()?;
                    let mut fields = vec![arrow::datatypes::Field::new(
                        "value",
                        self.type_of(&x)?,
                        true,
                    )];
                    for (i, k) in keys.iter().enumerate() {
                        fields.push(arrow::datatypes::Field::new(
                            format!("key{i}"),
                            self.type_of(&k.expr)?,
                            true,
                        ));
                    }
                    let data_type = DataType::Struct(fields.into());
                    let param = AggParam::OrderedSeparator {
                        separator,
                        keys: keys.iter().map(|k| (!k.asc, k.nulls_first)).collect(),
                    };
                    let mut row = vec![x.clone()];
                    row.extend(keys.into_iter().map(|k| k.expr));
                    let row = Expr::Function {
                        func: ScalarFunc::Row,
                        args: row,
                        data_type: data_type.clone(),
                    };
                    // a NULL value is no row to join
                    let row = Expr::Case {
                        branches: vec![(Expr::IsNotNull(Box::new(x)), row)],
                        else_expr: None,
                        data_type,
                    };
                    (AggFunc::StringAgg, Some(row), Some(param))
                }
            }
            "arg_min" | "arg_max" | "min_by" | "max_by" | "argmin" | "argmax" => {
                arity(2)?;
                let (a, v) = (bound(0)?, bound(1)?);
                let fields = vec![
                    arrow::datatypes::Field::new("arg", self.type_of(&a)?, true),
                    arrow::datatypes::Field::new("val", self.type_of(&v)?, true),
                ];
                let func = if matches!(name, "arg_min" | "min_by" | "argmin") {
                    AggFunc::ArgMin
                } else {
                    AggFunc::ArgMax
                };
                // an aggregate has one argument: the two go as one row
                let row = Expr::Function {
                    func: ScalarFunc::Row,
                    args: vec![a, v],
                    data_type: DataType::Struct(fields.into()),
                };
                (func, Some(row), None)
            }
            "median" | "quantile_cont" | "quantile_disc" => {
                let q = if name == "median" {
                    arity(1)?;
                    Quantile::Decimal {
                        unscaled: 5,
                        scale: 1,
                    }
                } else {
                    arity(2)?;
                    let q = self.constant_argument(bound(1)?, name, "quantile", loc)?;
                    quantile(q, name, loc)?
                };
                let mut x = bound(0)?;
                let mut t = self.type_of(&x)?;
                // The median of what does not interpolate (text, booleans)
                // is a value of the group, as in DuckDB.
                let interpolate = name == "quantile_cont"
                    || (name == "median" && !is_string(&t) && t != DataType::Boolean);
                if interpolate && matches!(t, DataType::Date32 | DataType::Timestamp(_, _)) {
                    // dates and timestamps interpolate as their microseconds
                    // (exact in a double up to the year 2255), the answer a
                    // TIMESTAMP as in DuckDB
                    let ts = match &t {
                        DataType::Timestamp(_, _) => t.clone(),
                        _ => crate::exec::timestamp::timestamp_type(false),
                    };
                    x = x.cast(ts.clone()).cast(DataType::Int64);
                    t = DataType::Int64;
                    result_cast = Some(ts);
                }
                let numeric = crate::plan::types::is_numeric(&t) || t == DataType::Null;
                if interpolate && !numeric {
                    return Err(QuarryError::plan_at(
                        format!(
                            "{name}() is not supported for {} (quantile_disc() is)",
                            sql_type_name(&t)
                        ),
                        loc,
                    ));
                }
                let func = if interpolate {
                    AggFunc::QuantileCont
                } else {
                    AggFunc::QuantileDisc
                };
                (func, Some(x), Some(AggParam::Quantile(q)))
            }
            _ => {
                arity(1)?;
                let func = match name {
                    "sum" => AggFunc::Sum,
                    "avg" => AggFunc::Avg,
                    "min" => AggFunc::Min,
                    "var_samp" | "variance" => AggFunc::VarSamp,
                    "var_pop" => AggFunc::VarPop,
                    "stddev_samp" | "stddev" => AggFunc::StddevSamp,
                    "stddev_pop" => AggFunc::StddevPop,
                    "approx_count_distinct" => AggFunc::ApproxCountDistinct,
                    // over booleans, false < true: all true is the least, any
                    // true the greatest
                    "bool_and" => AggFunc::Min,
                    _ => AggFunc::Max,
                };
                (func, Some(bound(0)?), None)
            }
        };
        if let Some(a) = &arg {
            let t = self.type_of(a)?;
            let numeric = crate::plan::types::is_numeric(&t) || t == DataType::Null;
            if (matches!(func, AggFunc::Sum | AggFunc::Avg) || func.is_variance()) && !numeric {
                return Err(QuarryError::plan_at(
                    format!("{name}() is not defined for {}", sql_type_name(&t)),
                    loc,
                ));
            }
            let boolean = matches!(t, DataType::Boolean | DataType::Null);
            if matches!(name, "bool_and" | "bool_or") && !boolean {
                return Err(QuarryError::plan_at(
                    format!("{name}() takes a BOOLEAN, not {}", sql_type_name(&t)),
                    loc,
                ));
            }
        }
        let arg = match filter {
            None => arg,
            Some(f) => {
                let condition = bind_inner(f)?;
                let t = self.type_of(&condition)?;
                if !matches!(t, DataType::Boolean | DataType::Null) {
                    return Err(QuarryError::plan_at(
                        format!(
                            "FILTER (WHERE …) takes a BOOLEAN, not {}",
                            sql_type_name(&t)
                        ),
                        loc,
                    ));
                }
                let value = arg.unwrap_or(Expr::lit(ScalarValue::Int64(Some(1))));
                let data_type = self.type_of(&value)?;
                Some(Expr::Case {
                    branches: vec![(condition, value)],
                    else_expr: None,
                    data_type,
                })
            }
        };
        let func = if arg.is_none() {
            AggFunc::CountStar
        } else {
            func
        };
        let distinct = distinct && func != AggFunc::CountStar;
        let aggregate = Expr::Aggregate(Box::new(AggregateExpr {
            func,
            arg,
            distinct,
            param,
        }));
        Ok(match result_cast {
            Some(t) => aggregate.cast(DataType::Int64).cast(t),
            None => aggregate,
        })
    }

    /// Checks the arguments of a regex function (arity checked) and makes
    /// its options and group literals: those must be constants (as in
    /// DuckDB); a constant pattern or replacement is checked here so that
    /// its error comes with the SQL location.
    fn regex_arguments(
        &self,
        func: ScalarFunc,
        args: &mut [Expr],
        types: &[DataType],
        loc: Option<Location>,
    ) -> Result<()> {
        use crate::exec::regexp;
        let name = func.name();
        let is_extract = func == ScalarFunc::RegexpExtract;
        let (options_at, text_args) = match func {
            ScalarFunc::RegexpReplace => (3, 3),
            ScalarFunc::RegexpExtract => (3, 2),
            _ => (2, 2),
        };
        if let Some((_, t)) = types
            .iter()
            .enumerate()
            .find(|(i, t)| (*i < text_args || *i == options_at) && !is_text(t))
        {
            return Err(QuarryError::plan_at(
                format!("{name}() is not defined for {}", sql_type_name(t)),
                loc,
            ));
        }
        let plan_err = |m: String| QuarryError::plan_at(m, loc);
        let mut options = regexp::Options::default();
        if let Some(o) = args.get(options_at) {
            let text = match self.constant_argument(o.clone(), name, "options", loc)? {
                ScalarValue::Utf8(Some(s)) => s,
                _ => {
                    return Err(plan_err(format!(
                        "the options of {name}() must be a string, not NULL"
                    )))
                }
            };
            options = regexp::options(func, &text).map_err(plan_err)?;
            args[options_at] = Expr::Literal(ScalarValue::Utf8(Some(text)));
        }
        if is_extract {
            if let Some(g) = args.get(2) {
                let v = self.constant_argument(g.clone(), name, "group", loc)?;
                let group = match v.cast_to(&DataType::Int64) {
                    Ok(ScalarValue::Int64(Some(g))) if (0..=regexp::MAX_GROUP).contains(&g) => g,
                    _ => {
                        return Err(plan_err(format!(
                            "the group of {name}() must be an integer from 0 to {}, got {v}",
                            regexp::MAX_GROUP
                        )))
                    }
                };
                args[2] = Expr::Literal(ScalarValue::Int64(Some(group)));
            }
        }
        let constant = |e: &Expr| match crate::optimizer::constant_folding::fold_expr(e.clone()) {
            Ok(Expr::Literal(ScalarValue::Utf8(Some(s)))) => Some(s),
            _ => None,
        };
        let full = func == ScalarFunc::RegexpFullMatch;
        let re = match constant(&args[1]) {
            Some(p) => Some(regexp::compile(&p, options, full).map_err(plan_err)?),
            None => None,
        };
        if func == ScalarFunc::RegexpReplace {
            if let Some(r) = constant(&args[2]) {
                let rw = regexp::rewrite(&r).map_err(plan_err)?;
                if let Some(re) = &re {
                    regexp::check_groups(re, &rw).map_err(plan_err)?;
                }
            }
        }
        Ok(())
    }

    /// The value of an aggregate's constant argument `what` (a quantile, a
    /// separator): an expression of literals, folded.
    fn constant_argument(
        &self,
        e: Expr,
        name: &str,
        what: &str,
        loc: Option<Location>,
    ) -> Result<ScalarValue> {
        match crate::optimizer::constant_folding::fold_expr(e)? {
            Expr::Literal(v) => Ok(v),
            _ => Err(QuarryError::plan_at(
                format!("the {what} of {name}() must be a constant"),
                loc,
            )),
        }
    }
}

/// The quantile `v` of `name`(x, q): a number in [-1, 1] (a negative one
/// counts from the top, as in DuckDB), not NULL.
fn quantile(v: ScalarValue, name: &str, loc: Option<Location>) -> Result<Quantile> {
    if v.is_null() {
        return Err(QuarryError::plan_at(
            format!("the quantile of {name}() must not be NULL"),
            loc,
        ));
    }
    let q = match v {
        // a decimal literal, kept exact (its scale at most 18: an i64's
        // digits)
        ScalarValue::Decimal128(Some(u), _, scale) if (0..=18).contains(&scale) => {
            i64::try_from(u).ok().map(|unscaled| Quantile::Decimal {
                unscaled,
                scale: scale as u8,
            })
        }
        ref other => match other.cast_to(&DataType::Float64) {
            Ok(ScalarValue::Float64(Some(f))) => Some(Quantile::Double(f.to_bits())),
            _ => None,
        },
    };
    match q {
        Some(q) if (-1.0..=1.0).contains(&q.value()) => Ok(q),
        _ => Err(QuarryError::plan_at(
            format!("the quantile of {name}() must be a number between -1 and 1, got {v}"),
            loc,
        )),
    }
}

/// Gives an error without a place the place of `e`.
fn locate(err: QuarryError, e: &ast::Expr) -> QuarryError {
    match err {
        QuarryError::Plan {
            message,
            location: None,
        } => QuarryError::Plan {
            message,
            location: at(e),
        },
        other => other,
    }
}

fn binary_op(op: &BinaryOperator, loc: Option<Location>) -> Result<BinaryOp> {
    Ok(match op {
        BinaryOperator::Plus => BinaryOp::Plus,
        BinaryOperator::Minus => BinaryOp::Minus,
        BinaryOperator::Multiply => BinaryOp::Multiply,
        BinaryOperator::Divide => BinaryOp::Divide,
        BinaryOperator::Modulo => BinaryOp::Modulo,
        BinaryOperator::Eq => BinaryOp::Eq,
        BinaryOperator::NotEq => BinaryOp::NotEq,
        BinaryOperator::Lt => BinaryOp::Lt,
        BinaryOperator::LtEq => BinaryOp::LtEq,
        BinaryOperator::Gt => BinaryOp::Gt,
        BinaryOperator::GtEq => BinaryOp::GtEq,
        BinaryOperator::And => BinaryOp::And,
        BinaryOperator::Or => BinaryOp::Or,
        BinaryOperator::StringConcat => BinaryOp::Concat,
        other => {
            return Err(QuarryError::plan_at(
                format!("unsupported operator {other}"),
                loc,
            ))
        }
    })
}

/// A literal: integers are BIGINT, numbers with a point DECIMAL, with an
/// exponent DOUBLE.
fn literal(v: &Value, loc: Option<Location>) -> Result<Expr> {
    let s = match v {
        Value::Number(n, _) => return number_literal(n, loc),
        Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => {
            ScalarValue::Utf8(Some(s.clone()))
        }
        Value::Boolean(b) => ScalarValue::Boolean(Some(*b)),
        Value::Null => ScalarValue::Null,
        other => {
            return Err(QuarryError::plan_at(
                format!("unsupported literal {other}"),
                loc,
            ))
        }
    };
    Ok(Expr::Literal(s))
}

fn number_literal(n: &str, loc: Option<Location>) -> Result<Expr> {
    if let Ok(i) = n.parse::<i64>() {
        return Ok(Expr::Literal(ScalarValue::Int64(Some(i))));
    }
    let bad = || QuarryError::plan_at(format!("invalid number '{n}'"), loc);
    if n.contains(['e', 'E']) {
        return n
            .parse::<f64>()
            .map(|f| Expr::Literal(ScalarValue::Float64(Some(f))))
            .map_err(|_| bad());
    }
    let (int_part, frac) = n.split_once('.').unwrap_or((n, ""));
    let digits: String = format!("{int_part}{frac}");
    // As DuckDB: 0.05 is DECIMAL(3,2), counting the integer digit.
    let precision = int_part.len().max(1) + frac.len();
    if precision > 38 {
        return n
            .parse::<f64>()
            .map(|f| Expr::Literal(ScalarValue::Float64(Some(f))))
            .map_err(|_| bad());
    }
    let value: i128 = if digits.is_empty() {
        0
    } else {
        digits.parse().map_err(|_| bad())?
    };
    Ok(Expr::Literal(ScalarValue::Decimal128(
        Some(value),
        precision as u8,
        frac.len() as i8,
    )))
}

/// Maps a SQL type name to an Arrow type.
pub fn sql_data_type(t: &ast::DataType, loc: Option<Location>) -> Result<DataType> {
    use ast::DataType as D;
    if let Some(t) = super::temporal::timestamp_sql_type(t, loc) {
        return t;
    }
    Ok(match t {
        D::TinyInt(_) => DataType::Int8,
        D::SmallInt(_) => DataType::Int16,
        D::Int(_) | D::Integer(_) | D::Int4(_) => DataType::Int32,
        D::BigInt(_) | D::Int8(_) | D::Int64 => DataType::Int64,
        D::Real | D::Float4 => DataType::Float32,
        D::Float(_) | D::Double(_) | D::DoublePrecision | D::Float8 | D::Float64 => {
            DataType::Float64
        }
        D::Decimal(info) | D::Numeric(info) | D::Dec(info) => match info {
            ast::ExactNumberInfo::None => DataType::Decimal128(18, 3),
            ast::ExactNumberInfo::Precision(p) => DataType::Decimal128(*p as u8, 0),
            ast::ExactNumberInfo::PrecisionAndScale(p, s) => {
                if *p == 0 || *p > 38 || *s < 0 || *s as u64 > *p {
                    return Err(QuarryError::plan_at(
                        format!("invalid decimal type {t}"),
                        loc,
                    ));
                }
                DataType::Decimal128(*p as u8, *s as i8)
            }
        },
        D::Varchar(_)
        | D::Text
        | D::String(_)
        | D::Char(_)
        | D::CharVarying(_)
        | D::Character(_) => DataType::Utf8,
        D::Date => DataType::Date32,
        D::Boolean | D::Bool => DataType::Boolean,
        other => {
            return Err(QuarryError::plan_at(
                format!("unsupported type {other}"),
                loc,
            ))
        }
    })
}

/// A text argument (NULL also fits).
fn is_text(t: &DataType) -> bool {
    is_string(t) || t.is_null()
}

/// A count argument: an integer (or NULL).
fn is_count(t: &DataType) -> bool {
    t.is_integer() || t.is_null()
}

/// Today's date in UTC, as days since 1970-01-01 (a DATE's value).
fn utc_today() -> Result<i32> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| QuarryError::plan(format!("the system clock is before 1970: {e}")))?
        .as_secs();
    i32::try_from(secs / 86_400)
        .map_err(|_| QuarryError::plan("the system clock is past the last DATE"))
}
