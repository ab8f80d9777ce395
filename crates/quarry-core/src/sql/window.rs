//! Binding window function calls (`f(…) OVER (PARTITION BY … ORDER BY …
//! frame)`) and planning them: Window nodes after the aggregation and
//! HAVING, before the projection, one per distinct PARTITION BY and ORDER BY.

use sqlparser::ast::{self, FunctionArg, FunctionArgExpr, FunctionArguments};

use super::expr::{aggregate_order, ExprBinder};
use crate::error::{Location, QuarryError, Result};
use crate::plan::{
    AggregateExpr, BinaryOp, Expr, FrameBound, FrameUnits, LogicalPlan, SortKey, WindowExpr,
    WindowFrame, WindowFunc,
};
use arrow::datatypes::DataType;
use datafusion_common::ScalarValue;

/// The arguments of a window call: an aggregate's bound as the aggregate
/// call itself (its checks, constant arguments and FILTER as in GROUP BY),
/// a window function's one by one.
enum WindowArgs {
    Aggregate(Expr),
    Plain(Vec<Expr>),
}

/// The aggregate call `call` (maybe under the casts that give it its
/// type) with the aggregate made a window call by `window`.
fn aggregate_as_window(call: Expr, window: &dyn Fn(AggregateExpr) -> Expr) -> Result<Expr> {
    match call {
        Expr::Aggregate(a) => Ok(window(*a)),
        Expr::Cast { expr, to } => Ok(aggregate_as_window(*expr, window)?.cast(to)),
        _ => Err(QuarryError::plan(
            "internal error: an aggregate call bound as something else",
        )),
    }
}

impl ExprBinder<'_> {
    /// A call with an OVER clause.
    pub(super) fn bind_window(
        &self,
        f: &ast::Function,
        name: &str,
        loc: Option<Location>,
    ) -> Result<Expr> {
        let err = |m: String| QuarryError::plan_at(m, loc);
        if !self.allow_windows.get() {
            return Err(err(format!(
                "window function {name}() is not allowed here: windows go in SELECT, QUALIFY and ORDER BY, not inside another window or aggregate"
            )));
        }
        let aggregate = WindowFunc::by_name(name).is_none();
        if aggregate && !super::expr::AGGREGATES.contains(&name) {
            return Err(err(format!(
                "{name}() is not supported as a window function"
            )));
        }
        let spec = match &f.over {
            Some(over) => self.resolve_window(over, loc)?,
            None => return Err(err(format!("{name}() needs an OVER clause"))),
        };
        let spec = &spec;
        let distinct = matches!(&f.args, FunctionArguments::List(l)
            if matches!(l.duplicate_treatment, Some(ast::DuplicateTreatment::Distinct)));
        let unsupported = [
            (f.filter.is_some() && !aggregate, "FILTER (WHERE …)"),
            (f.null_treatment.is_some(), "IGNORE/RESPECT NULLS"),
            (!f.within_group.is_empty(), "WITHIN GROUP"),
            (
                matches!(&f.args, FunctionArguments::List(l)
                    if !l.clauses.is_empty() && (!aggregate || aggregate_order(f).is_none())),
                "ORDER BY or other clauses in the arguments",
            ),
            (distinct && !aggregate, "DISTINCT"),
        ];
        if let Some((_, what)) = unsupported.iter().find(|(present, _)| *present) {
            return Err(err(format!(
                "{what} in a window call of {name}() is not supported"
            )));
        }
        // No window function inside a window function.
        self.allow_windows.set(false);
        let bound = self.bind_window_parts(f, aggregate, name, spec, loc);
        self.allow_windows.set(true);
        let (args, partition_by, order_by) = bound?;
        let frame = match &spec.window_frame {
            None => WindowFrame::default_for(!order_by.is_empty()),
            Some(fr) => self.bind_frame(fr, &order_by, loc)?,
        };
        let window = |func, args, distinct, param| {
            Expr::Window(Box::new(WindowExpr {
                func,
                args,
                distinct,
                param,
                partition_by: partition_by.clone(),
                order_by: order_by.clone(),
                frame: frame.clone(),
            }))
        };
        let func = match args {
            WindowArgs::Aggregate(call) => {
                // the aggregate bound as in GROUP BY, made a window call
                return aggregate_as_window(call, &|a| {
                    let args = a.arg.into_iter().collect();
                    window(WindowFunc::Aggregate(a.func), args, a.distinct, a.param)
                });
            }
            WindowArgs::Plain(args) => (WindowFunc::by_name(name), args),
        };
        let (Some(func), args) = func else {
            return Err(err(format!(
                "{name}() is not supported as a window function"
            )));
        };
        let (least, most) = func.arity();
        if args.len() < least || args.len() > most {
            let takes = match (least, most) {
                (l, m) if l == m => format!("{l}"),
                (l, m) => format!("{l} to {m}"),
            };
            return Err(err(format!(
                "{name}() takes {takes} arguments, got {}",
                args.len()
            )));
        }
        self.check_window_args(func, name, &args, loc)?;
        Ok(window(func, args, false, None))
    }

    /// The window of an OVER clause with the named windows it refers to
    /// (`OVER w`, `OVER (w ORDER BY …)`) filled in: their PARTITION BY,
    /// their ORDER BY unless it adds one, their frame unless it has one.
    fn resolve_window(
        &self,
        over: &ast::WindowType,
        loc: Option<Location>,
    ) -> Result<ast::WindowSpec> {
        let err = |m: String| QuarryError::plan_at(m, loc);
        let reference = |name: &ast::Ident| ast::WindowSpec {
            window_name: Some(name.clone()),
            partition_by: vec![],
            order_by: vec![],
            window_frame: None,
        };
        let mut spec = match over {
            ast::WindowType::WindowSpec(s) => s.clone(),
            ast::WindowType::NamedWindow(name) => reference(name),
        };
        let mut followed = 0;
        while let Some(name) = spec.window_name.take() {
            followed += 1;
            if followed > self.named_windows.len() {
                return Err(err(format!("window {name} refers to itself")));
            }
            let Some((_, base)) = self
                .named_windows
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(&name.value))
            else {
                let hint = crate::catalog::closest(
                    &name.value,
                    self.named_windows.iter().map(|(n, _)| n.as_str()),
                )
                .map(|c| format!(", did you mean '{c}'?"))
                .unwrap_or_default();
                return Err(err(format!("no window named '{name}'{hint}")));
            };
            let base = match base {
                ast::NamedWindowExpr::WindowSpec(s) => s.clone(),
                ast::NamedWindowExpr::NamedWindow(n) => reference(n),
            };
            if !spec.partition_by.is_empty() {
                return Err(err(format!(
                    "a window based on window {name} cannot have a PARTITION BY of its own"
                )));
            }
            if !spec.order_by.is_empty() && !base.order_by.is_empty() {
                return Err(err(format!(
                    "a window based on window {name} cannot replace its ORDER BY"
                )));
            }
            spec = ast::WindowSpec {
                window_name: base.window_name,
                partition_by: base.partition_by,
                order_by: if spec.order_by.is_empty() {
                    base.order_by
                } else {
                    spec.order_by
                },
                window_frame: spec.window_frame.or(base.window_frame),
            };
        }
        Ok(spec)
    }

    #[allow(clippy::type_complexity)]
    fn bind_window_parts(
        &self,
        f: &ast::Function,
        aggregate: bool,
        name: &str,
        spec: &ast::WindowSpec,
        loc: Option<Location>,
    ) -> Result<(WindowArgs, Vec<Expr>, Vec<crate::plan::SortKey>)> {
        let (list, distinct) = match &f.args {
            FunctionArguments::None => (vec![], false),
            FunctionArguments::Subquery(_) => {
                return Err(QuarryError::plan_at(
                    "a subquery as the argument list is not supported",
                    loc,
                ))
            }
            FunctionArguments::List(l) => (
                l.args.clone(),
                matches!(
                    l.duplicate_treatment,
                    Some(ast::DuplicateTreatment::Distinct)
                ),
            ),
        };
        let args = if aggregate {
            let parts = super::expr::AggregateCall {
                args: &list,
                distinct,
                filter: f.filter.as_deref(),
                order_by: aggregate_order(f).unwrap_or(&[]),
            };
            let call = self.bind_aggregate(name, parts, true, loc)?;
            WindowArgs::Aggregate(call)
        } else {
            let mut args = Vec::new();
            for a in &list {
                match a {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => args.push(self.bind(e)?),
                    other => {
                        return Err(QuarryError::plan_at(
                            format!("unsupported argument {other} of {name}()"),
                            loc,
                        ))
                    }
                }
            }
            WindowArgs::Plain(args)
        };
        let partition_by = spec
            .partition_by
            .iter()
            .map(|e| self.bind(e))
            .collect::<Result<Vec<_>>>()?;
        let order_by = spec
            .order_by
            .iter()
            .map(|o| Ok(super::binder::sort_key(self.bind(&o.expr)?, &o.options)))
            .collect::<Result<Vec<_>>>()?;
        Ok((args, partition_by, order_by))
    }

    /// Arguments that must be constants, and types the function needs.
    fn check_window_args(
        &self,
        func: WindowFunc,
        name: &str,
        args: &[Expr],
        loc: Option<Location>,
    ) -> Result<()> {
        let err = |m: String| Err(QuarryError::plan_at(m, loc));
        let integer_constant = |e: &Expr, what: &str| -> Result<()> {
            let t = self.type_of(e)?;
            if !e.is_constant() || !(t.is_integer() || t == arrow::datatypes::DataType::Null) {
                return err(format!("{what} of {name}() must be a constant integer"));
            }
            Ok(())
        };
        match func {
            WindowFunc::Ntile => integer_constant(&args[0], "the number of buckets")?,
            WindowFunc::NthValue => integer_constant(&args[1], "the row number")?,
            WindowFunc::Lag | WindowFunc::Lead => {
                if let Some(offset) = args.get(1) {
                    integer_constant(offset, "the offset")?;
                }
                if let Some(default) = args.get(2) {
                    if !default.is_constant() {
                        return err(format!("the default of {name}() must be a constant"));
                    }
                    let (to, from) = (self.type_of(&args[0])?, self.type_of(default)?);
                    if !arrow::compute::can_cast_types(&from, &to) {
                        return err(format!(
                            "the default of {name}() is a {} where the value is a {}",
                            crate::plan::types::sql_type_name(&from),
                            crate::plan::types::sql_type_name(&to)
                        ));
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

impl ExprBinder<'_> {
    /// A frame clause. A RANGE offset needs one ORDER BY key, numeric with
    /// a non-negative number, or a DATE with an interval (or a number of
    /// days).
    fn bind_frame(
        &self,
        fr: &ast::WindowFrame,
        order_by: &[SortKey],
        loc: Option<Location>,
    ) -> Result<WindowFrame> {
        let err = |m: &str| QuarryError::plan_at(m, loc);
        let units = match fr.units {
            ast::WindowFrameUnits::Rows => FrameUnits::Rows,
            ast::WindowFrameUnits::Range => FrameUnits::Range,
            ast::WindowFrameUnits::Groups => FrameUnits::Groups,
        };
        let rows_offset = |e: &ast::Expr| -> Result<u64> {
            let unit = if units == FrameUnits::Groups {
                "GROUPS"
            } else {
                "ROWS"
            };
            match e {
                ast::Expr::Value(v) => match &v.value {
                    ast::Value::Number(n, _) => n.parse::<u64>().map_err(|_| {
                        err(&format!("a {unit} offset must be a non-negative integer"))
                    }),
                    _ => Err(err(&format!(
                        "a {unit} offset must be a non-negative integer"
                    ))),
                },
                _ => Err(err(&format!(
                    "a {unit} offset must be a non-negative integer constant"
                ))),
            }
        };
        let bound = |b: &ast::WindowFrameBound| -> Result<FrameBound> {
            Ok(match (b, units) {
                (ast::WindowFrameBound::CurrentRow, _) => FrameBound::CurrentRow,
                (ast::WindowFrameBound::Preceding(None), _) => FrameBound::UnboundedPreceding,
                (ast::WindowFrameBound::Following(None), _) => FrameBound::UnboundedFollowing,
                (
                    ast::WindowFrameBound::Preceding(Some(e)),
                    FrameUnits::Rows | FrameUnits::Groups,
                ) => FrameBound::Preceding(rows_offset(e)?),
                (
                    ast::WindowFrameBound::Following(Some(e)),
                    FrameUnits::Rows | FrameUnits::Groups,
                ) => FrameBound::Following(rows_offset(e)?),
                (ast::WindowFrameBound::Preceding(Some(e)), FrameUnits::Range) => {
                    self.range_offset(e, true, order_by, loc)?
                }
                (ast::WindowFrameBound::Following(Some(e)), FrameUnits::Range) => {
                    self.range_offset(e, false, order_by, loc)?
                }
            })
        };
        let start = bound(&fr.start_bound)?;
        let end = match &fr.end_bound {
            Some(b) => bound(b)?,
            None => FrameBound::CurrentRow,
        };
        if start == FrameBound::UnboundedFollowing {
            return Err(err("a frame cannot start at UNBOUNDED FOLLOWING"));
        }
        if end == FrameBound::UnboundedPreceding {
            return Err(err("a frame cannot end at UNBOUNDED PRECEDING"));
        }
        let preceding = |b: &FrameBound| {
            matches!(
                b,
                FrameBound::Preceding(_)
                    | FrameBound::RangeOffset {
                        preceding: true,
                        ..
                    }
            )
        };
        let following = |b: &FrameBound| {
            matches!(
                b,
                FrameBound::Following(_)
                    | FrameBound::RangeOffset {
                        preceding: false,
                        ..
                    }
            )
        };
        if (start == FrameBound::CurrentRow && preceding(&end))
            || (following(&start) && (preceding(&end) || end == FrameBound::CurrentRow))
        {
            return Err(err("a frame cannot end before it starts"));
        }
        Ok(WindowFrame { units, start, end })
    }

    /// `RANGE offset PRECEDING|FOLLOWING`: the offset and the key it
    /// reaches from each row's.
    fn range_offset(
        &self,
        e: &ast::Expr,
        preceding: bool,
        order_by: &[SortKey],
        loc: Option<Location>,
    ) -> Result<FrameBound> {
        let err = |m: String| QuarryError::plan_at(m, loc);
        let [key] = order_by else {
            return Err(err(
                "a RANGE frame with an offset needs exactly one ORDER BY key".into(),
            ));
        };
        let offset = crate::optimizer::fold_expr(self.bind(e)?)?;
        let Expr::Literal(value) = &offset else {
            return Err(err("a RANGE offset must be a constant".into()));
        };
        let key_type = self.type_of(&key.expr)?;
        let offset = match (&key_type, value) {
            // a number of days before or after a date
            (DataType::Date32, v) if v.data_type().is_integer() => {
                let days = v.cast_to(&DataType::Int32).ok().and_then(|d| match d {
                    ScalarValue::Int32(Some(d)) => Some(d),
                    _ => None,
                });
                match days {
                    Some(d) => Expr::Literal(ScalarValue::new_interval_mdn(0, d, 0)),
                    None => return Err(err(format!("RANGE offset {value} is out of range"))),
                }
            }
            _ => offset,
        };
        let Expr::Literal(value) = &offset else {
            return Err(err("a RANGE offset must be a constant".into()));
        };
        let negative = match value {
            ScalarValue::IntervalMonthDayNano(Some(i)) => {
                i.months < 0 || i.days < 0 || i.nanoseconds < 0
            }
            v if v.is_null() => return Err(err("a RANGE offset cannot be NULL".into())),
            v => v
                .cast_to(&DataType::Float64)
                .ok()
                .and_then(|f| match f {
                    ScalarValue::Float64(Some(f)) => Some(f < 0.0),
                    _ => None,
                })
                .ok_or_else(|| {
                    err(format!(
                        "a RANGE offset must be a number or an interval, not {}",
                        crate::plan::types::sql_type_name(&v.data_type())
                    ))
                })?,
        };
        if negative {
            return Err(err("a RANGE offset cannot be negative".into()));
        }
        // back from the key for PRECEDING in an ascending order
        let op = if preceding == key.asc {
            BinaryOp::Minus
        } else {
            BinaryOp::Plus
        };
        let offset_type = self.type_of(&offset)?;
        let reach = super::coerce::binary(
            op,
            key.expr.clone(),
            key_type.clone(),
            offset.clone(),
            offset_type,
            loc,
        )
        .map_err(|_| {
            err(format!(
                "a RANGE offset of {} does not apply to an ORDER BY key of {}",
                crate::plan::types::sql_type_name(&self.type_of(&offset).unwrap_or(DataType::Null)),
                crate::plan::types::sql_type_name(&key_type)
            ))
        })?;
        Ok(FrameBound::RangeOffset {
            offset: Box::new(offset),
            preceding,
            reach: Box::new(reach),
        })
    }
}

/// The distinct window calls in `exprs`, in order of appearance.
pub(super) fn collect_windows<'e>(exprs: impl Iterator<Item = &'e Expr>) -> Vec<WindowExpr> {
    let mut found: Vec<WindowExpr> = Vec::new();
    for e in exprs {
        e.visit(&mut |x| {
            if let Expr::Window(w) = x {
                if !found.contains(w) {
                    found.push((**w).clone());
                }
            }
        });
    }
    found
}

/// Window nodes over `plan` computing `windows`, one per window (PARTITION
/// BY and ORDER BY); and where each call's value is among their columns.
pub(super) fn plan_windows(
    mut plan: LogicalPlan,
    windows: &[WindowExpr],
) -> Result<(LogicalPlan, Vec<(WindowExpr, usize)>)> {
    let mut placed: Vec<(WindowExpr, usize)> = Vec::new();
    let mut left: Vec<&WindowExpr> = windows.iter().collect();
    while let Some(first) = left.first().copied() {
        let (same, other): (Vec<&WindowExpr>, Vec<&WindowExpr>) =
            left.into_iter().partition(|w| w.same_window(first));
        left = other;
        let schema = plan.schema();
        let base = schema.fields().len();
        let names: Vec<String> = same
            .iter()
            .map(|w| w.display(&schema).to_string())
            .collect();
        for (j, w) in same.iter().enumerate() {
            placed.push(((*w).clone(), base + j));
        }
        plan = LogicalPlan::window(plan, same.into_iter().cloned().collect(), &names)?;
    }
    Ok((plan, placed))
}

/// `e` with each window call replaced by its column.
pub(super) fn replace_windows(e: Expr, placed: &[(WindowExpr, usize)]) -> Result<Expr> {
    e.transform_down(&mut |x| {
        if let Expr::Window(w) = x {
            let (_, col) = placed
                .iter()
                .find(|(p, _)| p == w.as_ref())
                .ok_or_else(|| QuarryError::plan("internal error: a window call not planned"))?;
            return Ok(Some(Expr::Column(*col)));
        }
        Ok(None)
    })
}
