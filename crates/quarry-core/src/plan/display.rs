//! Readable text of plans and expressions, for EXPLAIN.

use std::fmt;

use arrow::datatypes::Schema;

use super::expr::{AggregateExpr, Expr, JoinKind, ScalarFunc};
use super::logical::LogicalPlan;
use super::types::sql_type_name;

/// An expression shown with column names taken from its input schema.
pub struct ExprDisplay<'a> {
    pub expr: &'a Expr,
    pub schema: &'a Schema,
}

impl Expr {
    pub fn display<'a>(&'a self, schema: &'a Schema) -> ExprDisplay<'a> {
        ExprDisplay { expr: self, schema }
    }
}

impl fmt::Display for ExprDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.schema;
        let d = |e: &'_ Expr| ExprDisplay { expr: e, schema: s }.to_string();
        match self.expr {
            Expr::Column(i) => match s.fields().get(*i) {
                Some(field) => write!(f, "{}", field.name()),
                None => write!(f, "#{i}"),
            },
            Expr::Literal(v) => match v {
                datafusion_common::ScalarValue::Utf8(Some(t))
                | datafusion_common::ScalarValue::Utf8View(Some(t)) => write!(f, "'{t}'"),
                v if v.is_null() => write!(f, "NULL"),
                datafusion_common::ScalarValue::Date32(_) => write!(f, "DATE '{v}'"),
                datafusion_common::ScalarValue::IntervalMonthDayNano(Some(i)) => {
                    write!(
                        f,
                        "INTERVAL '{}'",
                        crate::exec::timestamp::format_interval(*i)
                    )
                }
                datafusion_common::ScalarValue::TimestampMicrosecond(Some(t), tz) => {
                    let ts = crate::exec::timestamp::format_timestamp(*t, tz.is_some());
                    let name = if tz.is_some() {
                        "TIMESTAMPTZ"
                    } else {
                        "TIMESTAMP"
                    };
                    write!(f, "{name} '{ts}'")
                }
                v => write!(f, "{v}"),
            },
            Expr::Binary { op, left, right } => {
                write!(f, "({} {} {})", d(left), op.symbol(), d(right))
            }
            Expr::Not(e) => write!(f, "NOT {}", d(e)),
            Expr::Negative(e) => write!(f, "-{}", d(e)),
            Expr::IsNull(e) => write!(f, "{} IS NULL", d(e)),
            Expr::IsNotNull(e) => write!(f, "{} IS NOT NULL", d(e)),
            Expr::Cast { expr, to } => write!(f, "CAST({} AS {})", d(expr), sql_type_name(to)),
            Expr::Case {
                branches,
                else_expr,
                ..
            } => {
                write!(f, "CASE")?;
                for (w, t) in branches {
                    write!(f, " WHEN {} THEN {}", d(w), d(t))?;
                }
                if let Some(e) = else_expr {
                    write!(f, " ELSE {}", d(e))?;
                }
                write!(f, " END")
            }
            Expr::InList {
                expr,
                list,
                negated,
            } => {
                let items: Vec<String> = list.iter().map(d).collect();
                let not = if *negated { "NOT " } else { "" };
                write!(f, "{} {not}IN ({})", d(expr), items.join(", "))
            }
            Expr::Like {
                expr,
                pattern,
                negated,
                case_insensitive,
            } => {
                let not = if *negated { "NOT " } else { "" };
                let op = if *case_insensitive { "ILIKE" } else { "LIKE" };
                write!(f, "{} {not}{op} {}", d(expr), d(pattern))
            }
            Expr::Function { func, args, .. } => {
                let args: Vec<String> = args.iter().map(d).collect();
                match func {
                    ScalarFunc::Extract(part) => {
                        write!(f, "extract({part:?} FROM {})", args.join(", "))
                    }
                    ScalarFunc::DateTrunc(part) => {
                        write!(f, "date_trunc({part:?}, {})", args.join(", "))
                    }
                    other => write!(f, "{}({})", other.name(), args.join(", ")),
                }
            }
            Expr::Aggregate(a) => write!(f, "{}", a.display(s)),
            Expr::Window(w) => write!(f, "{}", w.display(s)),
            Expr::OuterColumn { index, .. } => write!(f, "outer.#{index}"),
            Expr::SubqueryRef { id, .. } => write!(f, "subquery#{id}"),
        }
    }
}

impl AggregateExpr {
    pub fn display<'a>(&'a self, schema: &'a Schema) -> impl fmt::Display + 'a {
        AggDisplay { agg: self, schema }
    }
}

struct AggDisplay<'a> {
    agg: &'a AggregateExpr,
    schema: &'a Schema,
}

impl fmt::Display for AggDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let distinct = if self.agg.distinct { "DISTINCT " } else { "" };
        match &self.agg.arg {
            None => write!(f, "count(*)"),
            Some(a) => {
                let name = self.agg.func.name();
                write!(f, "{name}({distinct}{}", a.display(self.schema))?;
                match &self.agg.param {
                    Some(p) => write!(f, ", {p})"),
                    None => write!(f, ")"),
                }
            }
        }
    }
}

impl fmt::Display for LogicalPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_indent(f, 0)
    }
}

impl LogicalPlan {
    fn fmt_indent(&self, f: &mut fmt::Formatter<'_>, depth: usize) -> fmt::Result {
        write!(f, "{:width$}", "", width = depth * 2)?;
        let join = |v: Vec<String>| v.join(", ");
        match self {
            LogicalPlan::Scan(s) => {
                let cols: Vec<String> =
                    s.schema.fields().iter().map(|c| c.name().clone()).collect();
                write!(f, "Scan: {} [{}]", s.table_name, cols.join(", "))?;
                if !s.filters.is_empty() {
                    let fs: Vec<String> = s
                        .filters
                        .iter()
                        .map(|e| e.display(&s.schema).to_string())
                        .collect();
                    write!(f, " prune=[{}]", join(fs))?;
                }
            }
            LogicalPlan::Values { batches, .. } => {
                let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
                write!(f, "Values: {rows} rows")?;
            }
            LogicalPlan::Filter { input, predicate } => {
                write!(f, "Filter: {}", predicate.display(&input.schema()))?;
            }
            LogicalPlan::Project {
                input,
                exprs,
                schema,
            } => {
                let in_schema = input.schema();
                let items: Vec<String> = exprs
                    .iter()
                    .zip(schema.fields())
                    .map(|(e, field)| {
                        let text = e.display(&in_schema).to_string();
                        if &text == field.name() {
                            text
                        } else {
                            format!("{text} AS {}", field.name())
                        }
                    })
                    .collect();
                write!(f, "Project: {}", join(items))?;
            }
            LogicalPlan::Aggregate {
                input, group, aggs, ..
            } => {
                let in_schema = input.schema();
                let g: Vec<String> = group
                    .iter()
                    .map(|e| e.display(&in_schema).to_string())
                    .collect();
                let a: Vec<String> = aggs
                    .iter()
                    .map(|e| e.display(&in_schema).to_string())
                    .collect();
                write!(f, "Aggregate: group=[{}] aggs=[{}]", join(g), join(a))?;
            }
            LogicalPlan::Window { input, exprs, .. } => {
                let in_schema = input.schema();
                let w: Vec<String> = exprs
                    .iter()
                    .map(|w| w.display(&in_schema).to_string())
                    .collect();
                write!(f, "Window: {}", join(w))?;
            }
            LogicalPlan::Series {
                input,
                args,
                inclusive,
                schema,
            } => {
                let in_schema = input.schema();
                let a: Vec<String> = args
                    .iter()
                    .map(|e| e.display(&in_schema).to_string())
                    .collect();
                let func = if *inclusive {
                    "generate_series"
                } else {
                    "range"
                };
                let name = schema.fields().last().map_or("", |f| f.name().as_str());
                write!(f, "Series: {func}({}) AS {name}", join(a))?;
            }
            LogicalPlan::Sort { input, keys, fetch } => {
                let in_schema = input.schema();
                let k: Vec<String> = keys
                    .iter()
                    .map(|k| {
                        format!(
                            "{} {} NULLS {}",
                            k.expr.display(&in_schema),
                            if k.asc { "ASC" } else { "DESC" },
                            if k.nulls_first { "FIRST" } else { "LAST" }
                        )
                    })
                    .collect();
                write!(f, "Sort: {}", join(k))?;
                if let Some(n) = fetch {
                    write!(f, " fetch={n}")?;
                }
            }
            LogicalPlan::Join {
                left,
                right,
                kind,
                on,
                filter,
                ..
            } => {
                let (ls, rs) = (left.schema(), right.schema());
                let keys: Vec<String> = on
                    .iter()
                    .map(|(l, r)| format!("{} = {}", l.display(&ls), r.display(&rs)))
                    .collect();
                if keys.is_empty() && *kind == JoinKind::Inner {
                    write!(f, "CrossJoin")?;
                } else {
                    write!(f, "{kind:?}Join: {}", join(keys))?;
                }
                if let Some(flt) = filter {
                    // The residual sees left ++ right columns.
                    let mut fields: Vec<_> = ls.fields().iter().cloned().collect();
                    fields.extend(rs.fields().iter().cloned());
                    let both = arrow::datatypes::Schema::new(fields);
                    write!(f, " filter={}", flt.display(&both))?;
                }
            }
            LogicalPlan::Union { inputs, .. } => write!(f, "Union: {} inputs", inputs.len())?,
            LogicalPlan::Limit { skip, fetch, .. } => {
                write!(f, "Limit: skip={skip}")?;
                if let Some(n) = fetch {
                    write!(f, " fetch={n}")?;
                }
            }
        }
        writeln!(f)?;
        for input in self.inputs() {
            input.fmt_indent(f, depth + 1)?;
        }
        // A recursive CTE's seed and step (computed before the query runs).
        if let LogicalPlan::Scan(s) = self {
            if let Some(r) = s.provider.as_recursive() {
                let union = if r.distinct { "UNION" } else { "UNION ALL" };
                writeln!(
                    f,
                    "{:w$}RecursiveQuery {}: seed {union} step",
                    "",
                    r.name,
                    w = depth * 2 + 2
                )?;
                r.seed.fmt_indent(f, depth + 2)?;
                r.step.fmt_indent(f, depth + 2)?;
            }
        }
        Ok(())
    }
}
