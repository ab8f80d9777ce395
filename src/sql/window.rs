//! Binding window function calls (`f(…) OVER (PARTITION BY … ORDER BY …
//! frame)`) and planning them: Window nodes after the aggregation and
//! HAVING, before the projection, one per distinct PARTITION BY and ORDER BY.

use sqlparser::ast::{self, FunctionArg, FunctionArgExpr, FunctionArguments};

use super::expr::ExprBinder;
use crate::error::{Location, QuarryError, Result};
use crate::plan::types::is_numeric;
use crate::plan::{
    AggFunc, Expr, FrameBound, FrameUnits, LogicalPlan, WindowExpr, WindowFrame, WindowFunc,
};

/// The aggregates that work as window functions.
const WINDOW_AGGREGATES: [(&str, AggFunc); 5] = [
    ("sum", AggFunc::Sum),
    ("count", AggFunc::Count),
    ("avg", AggFunc::Avg),
    ("min", AggFunc::Min),
    ("max", AggFunc::Max),
];

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
        let func = match WindowFunc::by_name(name) {
            Some(w) => w,
            None => match WINDOW_AGGREGATES.iter().find(|(n, _)| *n == name) {
                Some((_, a)) => WindowFunc::Aggregate(*a),
                None => {
                    return Err(err(format!(
                        "{name}() is not supported as a window function"
                    )))
                }
            },
        };
        let spec = match &f.over {
            Some(ast::WindowType::WindowSpec(spec)) if spec.window_name.is_none() => spec,
            _ => return Err(err("named windows (WINDOW w AS …) are not supported".into())),
        };
        let unsupported = [
            (f.filter.is_some(), "FILTER (WHERE …)"),
            (f.null_treatment.is_some(), "IGNORE/RESPECT NULLS"),
            (!f.within_group.is_empty(), "WITHIN GROUP"),
            (
                matches!(&f.args, FunctionArguments::List(l) if !l.clauses.is_empty()),
                "ORDER BY or other clauses in the arguments",
            ),
            (
                matches!(&f.args, FunctionArguments::List(l)
                    if matches!(l.duplicate_treatment, Some(ast::DuplicateTreatment::Distinct))),
                "DISTINCT",
            ),
        ];
        if let Some((_, what)) = unsupported.iter().find(|(present, _)| *present) {
            return Err(err(format!(
                "{what} in a window call of {name}() is not supported"
            )));
        }
        // No window function inside a window function.
        self.allow_windows.set(false);
        let bound = self.bind_window_parts(f, func, name, spec, loc);
        self.allow_windows.set(true);
        let (args, partition_by, order_by) = bound?;
        let func = match (func, args.len()) {
            (WindowFunc::Aggregate(AggFunc::Count), 0) => WindowFunc::Aggregate(AggFunc::CountStar),
            (other, _) => other,
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
        let frame = match &spec.window_frame {
            None => WindowFrame::default_for(!order_by.is_empty()),
            Some(fr) => frame(fr, loc)?,
        };
        Ok(Expr::Window(Box::new(WindowExpr {
            func,
            args,
            partition_by,
            order_by,
            frame,
        })))
    }

    #[allow(clippy::type_complexity)]
    fn bind_window_parts(
        &self,
        f: &ast::Function,
        func: WindowFunc,
        name: &str,
        spec: &ast::WindowSpec,
        loc: Option<Location>,
    ) -> Result<(Vec<Expr>, Vec<Expr>, Vec<crate::plan::SortKey>)> {
        let list = match &f.args {
            FunctionArguments::None => vec![],
            FunctionArguments::Subquery(_) => {
                return Err(QuarryError::plan_at(
                    "a subquery as the argument list is not supported",
                    loc,
                ))
            }
            FunctionArguments::List(l) => l.args.clone(),
        };
        let mut args = Vec::new();
        for a in &list {
            match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => args.push(self.bind(e)?),
                FunctionArg::Unnamed(FunctionArgExpr::Wildcard)
                    if func == WindowFunc::Aggregate(AggFunc::Count) => {}
                other => {
                    return Err(QuarryError::plan_at(
                        format!("unsupported argument {other} of {name}()"),
                        loc,
                    ))
                }
            }
        }
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
            WindowFunc::Aggregate(AggFunc::Sum | AggFunc::Avg) => {
                let t = self.type_of(&args[0])?;
                if !(is_numeric(&t) || t == arrow::datatypes::DataType::Null) {
                    return err(format!(
                        "{name}() is not defined for {}",
                        crate::plan::types::sql_type_name(&t)
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn frame(fr: &ast::WindowFrame, loc: Option<Location>) -> Result<WindowFrame> {
    let err = |m: &str| QuarryError::plan_at(m, loc);
    let units = match fr.units {
        ast::WindowFrameUnits::Rows => FrameUnits::Rows,
        ast::WindowFrameUnits::Range => FrameUnits::Range,
        ast::WindowFrameUnits::Groups => return Err(err("GROUPS frames are not supported")),
    };
    let offset = |e: &ast::Expr| -> Result<u64> {
        if units == FrameUnits::Range {
            return Err(err(
                "RANGE frames with an offset are not supported (ROWS frames are)",
            ));
        }
        match e {
            ast::Expr::Value(v) => match &v.value {
                ast::Value::Number(n, _) => n
                    .parse::<u64>()
                    .map_err(|_| err("a frame offset must be a non-negative integer")),
                _ => Err(err("a frame offset must be a non-negative integer")),
            },
            _ => Err(err(
                "a frame offset must be a non-negative integer constant",
            )),
        }
    };
    let bound = |b: &ast::WindowFrameBound| -> Result<FrameBound> {
        Ok(match b {
            ast::WindowFrameBound::CurrentRow => FrameBound::CurrentRow,
            ast::WindowFrameBound::Preceding(None) => FrameBound::UnboundedPreceding,
            ast::WindowFrameBound::Preceding(Some(e)) => FrameBound::Preceding(offset(e)?),
            ast::WindowFrameBound::Following(None) => FrameBound::UnboundedFollowing,
            ast::WindowFrameBound::Following(Some(e)) => FrameBound::Following(offset(e)?),
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
    let starts_after_current = matches!(start, FrameBound::Following(_));
    let ends_before_current = matches!(end, FrameBound::Preceding(_));
    if (start == FrameBound::CurrentRow && ends_before_current)
        || (starts_after_current && (ends_before_current || end == FrameBound::CurrentRow))
    {
        return Err(err("a frame cannot end before it starts"));
    }
    Ok(WindowFrame { units, start, end })
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
