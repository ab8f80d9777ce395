//! Binding of TIMESTAMP and INTERVAL literals and of the date and time
//! functions (date_trunc, date_part, strftime, strptime, age, now, …):
//! their arguments are checked and cast here, so that a bad part name or
//! format is an error with the place in the SQL.

use arrow::datatypes::DataType;
use datafusion_common::ScalarValue;
use sqlparser::ast::{self, Value};

use super::expr::ExprBinder;
use crate::error::{Location, QuarryError, Result};
use crate::exec::timestamp::{self, interval_type, timestamp_type};
use crate::plan::expr::DatePart;
use crate::plan::types::{is_numeric, is_string, sql_type_name};
use crate::plan::{Expr, ScalarFunc};

/// The functions of this module, by their SQL names.
pub(crate) const TEMPORAL_FUNCTIONS: &[&str] = &[
    "date_part",
    "datepart",
    "date_trunc",
    "datetrunc",
    "strftime",
    "strptime",
    "age",
    "make_timestamp",
    "epoch_ms",
    "epoch",
    "to_timestamp",
    "now",
    "current_timestamp",
    "get_current_timestamp",
    "transaction_timestamp",
];

/// `TIMESTAMP '…'` / `TIMESTAMPTZ '…'`: the value, or an error naming it.
pub fn timestamp_literal(text: &str, t: &DataType, loc: Option<Location>) -> Result<Expr> {
    let tz = timestamp::has_zone(t);
    let v = timestamp::parse_timestamp(text, tz).map_err(|e| {
        QuarryError::plan_at(
            format!("invalid {} literal '{text}': {e}", sql_type_name(t)),
            loc,
        )
    })?;
    Ok(Expr::Literal(timestamp_value(v, tz)))
}

pub fn timestamp_value(micros: i64, tz: bool) -> ScalarValue {
    ScalarValue::TimestampMicrosecond(Some(micros), tz.then(|| timestamp::UTC.into()))
}

/// `INTERVAL '1 day 2 hours'`, `INTERVAL '3' HOUR`, `INTERVAL 3 HOUR`.
pub fn interval(iv: &ast::Interval, loc: Option<Location>) -> Result<Expr> {
    // `DAY TO SECOND` and the like would read the text as several fields
    if let Some(last) = &iv.last_field {
        return Err(QuarryError::plan_at(
            format!(
                "INTERVAL … TO {last} is not supported (write one unit, as in INTERVAL '90' DAY)"
            ),
            loc,
        ));
    }
    if iv.fractional_seconds_precision.is_some() {
        return Err(QuarryError::plan_at(
            "INTERVAL with a fractional seconds precision is not supported",
            loc,
        ));
    }
    let text = match iv.value.as_ref() {
        ast::Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => s.clone(),
            Value::Number(n, _) => n.clone(),
            other => other.to_string(),
        },
        ast::Expr::UnaryOp {
            op: ast::UnaryOperator::Minus,
            expr,
        } if matches!(expr.as_ref(), ast::Expr::Value(_)) => format!("-{expr}"),
        other => {
            return Err(QuarryError::plan_at(
                format!("unsupported interval value {other} (write a number or a string)"),
                loc,
            ))
        }
    };
    let v = match &iv.leading_field {
        // INTERVAL '3' MONTH: a whole number of the unit
        Some(f) => {
            let name = f.to_string().to_lowercase();
            let unit = timestamp::interval_unit(&name).ok_or_else(|| {
                QuarryError::plan_at(format!("unsupported interval unit '{name}'"), loc)
            })?;
            let n: i64 = text.trim().parse().map_err(|_| {
                QuarryError::plan_at(
                    format!("invalid interval '{text}': INTERVAL n {name} takes a whole number"),
                    loc,
                )
            })?;
            timestamp::interval_of(n, unit).ok_or_else(|| {
                QuarryError::plan_at(format!("INTERVAL {n} {name} is out of range"), loc)
            })?
        }
        None => timestamp::parse_interval(&text).map_err(|e| QuarryError::plan_at(e, loc))?,
    };
    Ok(Expr::Literal(ScalarValue::IntervalMonthDayNano(Some(v))))
}

/// The part named by `name` (a string constant), for `what`.
fn part_argument(arg: &Expr, what: &str, loc: Option<Location>) -> Result<DatePart> {
    let name = match arg {
        Expr::Literal(ScalarValue::Utf8(Some(p))) => p,
        _ => {
            return Err(QuarryError::plan_at(
                format!("the first argument of {what}() must be a part name such as 'year'"),
                loc,
            ))
        }
    };
    DatePart::from_name(name).ok_or_else(|| {
        QuarryError::plan_at(
            format!("{what}(): unknown part '{name}' (year, month, day, hour, minute, second, …)"),
            loc,
        )
    })
}

fn is_temporal(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Date32 | DataType::Timestamp(_, _) | DataType::Null
    )
}

/// A DATE (or NULL) as a TIMESTAMP; a timestamp as it is.
fn as_timestamp(e: Expr, t: &DataType) -> Expr {
    match t {
        DataType::Timestamp(_, _) => e,
        _ => e.cast(timestamp_type(false)),
    }
}

thread_local! {
    /// The time the statement being bound on this thread began binding.
    static STATEMENT_TIME: std::cell::Cell<Option<i64>> = const { std::cell::Cell::new(None) };
}

/// Notes the clock for the statement a new binder starts on (so that every
/// now() of one statement is the same time, as DuckDB's are).
pub(super) fn begin_statement() {
    STATEMENT_TIME.with(|t| t.set(clock_micros().ok()));
}

/// Microseconds since 1970 when the statement began binding, for now()
/// and current_timestamp: one value for all rows and calls of a query.
fn now_micros() -> Result<i64> {
    match STATEMENT_TIME.with(|t| t.get()) {
        Some(t) => Ok(t),
        None => clock_micros(),
    }
}

fn clock_micros() -> Result<i64> {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| QuarryError::plan(format!("the system clock is before 1970: {e}")))?;
    i64::try_from(d.as_micros())
        .map_err(|_| QuarryError::plan("the system clock is past the last TIMESTAMP"))
}

impl ExprBinder<'_> {
    /// `name(args)` for a function of TEMPORAL_FUNCTIONS.
    pub(super) fn temporal_function(
        &self,
        name: &str,
        mut args: Vec<Expr>,
        loc: Option<Location>,
    ) -> Result<Expr> {
        let types = args
            .iter()
            .map(|a| self.type_of(a))
            .collect::<Result<Vec<_>>>()?;
        let arity = |lo: usize, hi: usize| -> Result<()> {
            if (lo..=hi).contains(&args.len()) {
                return Ok(());
            }
            let want = if lo == hi {
                lo.to_string()
            } else {
                format!("{lo} or {hi}")
            };
            Err(QuarryError::plan_at(
                format!("{name}() takes {want} arguments, got {}", args.len()),
                loc,
            ))
        };
        let wrong = |t: &DataType| {
            QuarryError::plan_at(
                format!("{name}() is not defined for {}", sql_type_name(t)),
                loc,
            )
        };
        let func = |func: ScalarFunc, args: Vec<Expr>, data_type: DataType| {
            Ok(Expr::Function {
                func,
                args,
                data_type,
            })
        };
        match name {
            "now" | "current_timestamp" | "get_current_timestamp" | "transaction_timestamp" => {
                arity(0, 0)?;
                Ok(Expr::Literal(timestamp_value(now_micros()?, true)))
            }
            "date_part" | "datepart" => {
                arity(2, 2)?;
                let part = part_argument(&args[0], name, loc)?;
                self.extract(part, args.remove(1), name, loc)
            }
            "date_trunc" | "datetrunc" => {
                arity(2, 2)?;
                let part = part_argument(&args[0], name, loc)?;
                if !part.truncates() {
                    return Err(QuarryError::plan_at(
                        format!("{name}() cannot truncate to {part:?}"),
                        loc,
                    ));
                }
                if !is_temporal(&types[1]) {
                    return Err(wrong(&types[1]));
                }
                let x = as_timestamp(args.remove(1), &types[1]);
                let t = self.type_of(&x)?;
                func(ScalarFunc::DateTrunc(part), vec![x], t)
            }
            "strftime" => {
                arity(2, 2)?;
                if !is_temporal(&types[0]) {
                    return Err(wrong(&types[0]));
                }
                self.constant_format(&args[1], name, loc)?;
                let x = as_timestamp(args.remove(0), &types[0]);
                func(
                    ScalarFunc::Strftime,
                    vec![x, args.remove(0)],
                    DataType::Utf8,
                )
            }
            "strptime" => {
                arity(2, 2)?;
                if !is_string(&types[0]) && !types[0].is_null() {
                    return Err(wrong(&types[0]));
                }
                if let Some(f) = self.constant_format(&args[1], name, loc)? {
                    f.check_parse().map_err(|e| QuarryError::plan_at(e, loc))?;
                }
                func(ScalarFunc::Strptime, args, timestamp_type(false))
            }
            "age" => {
                arity(1, 2)?;
                if let Some(t) = types.iter().find(|t| !is_temporal(t)) {
                    return Err(wrong(t));
                }
                // age(x) is from x to today's midnight, as in DuckDB
                if args.len() == 1 {
                    let today = now_micros()?.div_euclid(timestamp::MICROS_PER_DAY)
                        * timestamp::MICROS_PER_DAY;
                    args.insert(0, Expr::Literal(timestamp_value(today, false)));
                }
                let args = args
                    .into_iter()
                    .map(|a| {
                        let t = self.type_of(&a)?;
                        Ok(match t {
                            DataType::Timestamp(_, None) => a,
                            _ => a.cast(timestamp_type(false)),
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                func(ScalarFunc::Age, args, interval_type())
            }
            "make_timestamp" => {
                if args.len() != 1 {
                    arity(6, 6)?;
                }
                let ints = if args.len() == 1 {
                    &types[..]
                } else {
                    &types[..5]
                };
                if let Some(t) = ints.iter().find(|t| !t.is_integer() && !t.is_null()) {
                    return Err(wrong(t));
                }
                if args.len() == 6 && !is_numeric(&types[5]) && !types[5].is_null() {
                    return Err(wrong(&types[5]));
                }
                func(ScalarFunc::MakeTimestamp, args, timestamp_type(false))
            }
            "epoch_ms" => {
                arity(1, 1)?;
                if types[0].is_integer() {
                    func(ScalarFunc::EpochMs, args, timestamp_type(false))
                } else if is_temporal(&types[0]) {
                    let x = as_timestamp(args.remove(0), &types[0]);
                    func(ScalarFunc::EpochMs, vec![x], DataType::Int64)
                } else {
                    Err(wrong(&types[0]))
                }
            }
            "epoch" => {
                arity(1, 1)?;
                if !is_temporal(&types[0]) {
                    return Err(wrong(&types[0]));
                }
                let x = as_timestamp(args.remove(0), &types[0]);
                func(ScalarFunc::Epoch, vec![x], DataType::Float64)
            }
            "to_timestamp" => {
                arity(1, 1)?;
                if !is_numeric(&types[0]) && !types[0].is_null() {
                    return Err(wrong(&types[0]));
                }
                func(ScalarFunc::ToTimestamp, args, timestamp_type(true))
            }
            other => Err(QuarryError::plan_at(
                format!("internal error: {other}() is no date function"),
                loc,
            )),
        }
    }

    /// `part` of the DATE, TIMESTAMP or INTERVAL `v` (extract(…) and
    /// date_part(…), named `what`): BIGINT, DOUBLE for the epoch.
    pub(super) fn extract(
        &self,
        part: DatePart,
        v: Expr,
        what: &str,
        loc: Option<Location>,
    ) -> Result<Expr> {
        let t = self.type_of(&v)?;
        if matches!(t, DataType::Interval(_)) && !part.of_intervals() {
            return Err(QuarryError::plan_at(
                format!(
                    "{what} of {} is not defined for an INTERVAL",
                    format!("{part:?}").to_lowercase()
                ),
                loc,
            ));
        }
        if !is_temporal(&t) && !matches!(t, DataType::Interval(_)) {
            return Err(QuarryError::plan_at(
                format!(
                    "{what} needs a DATE, a TIMESTAMP or an INTERVAL, got {}",
                    sql_type_name(&t)
                ),
                loc,
            ));
        }
        let data_type = if part == DatePart::Epoch {
            DataType::Float64
        } else {
            DataType::Int64
        };
        Ok(Expr::Function {
            func: ScalarFunc::Extract(part),
            args: vec![v],
            data_type,
        })
    }

    /// The format argument of strftime / strptime: a string constant,
    /// compiled to check its codes (None for a NULL format).
    fn constant_format(
        &self,
        e: &Expr,
        name: &str,
        loc: Option<Location>,
    ) -> Result<Option<crate::exec::strftime::Format>> {
        match crate::optimizer::constant_folding::fold_expr(e.clone())? {
            Expr::Literal(ScalarValue::Utf8(Some(f))) => crate::exec::strftime::Format::compile(&f)
                .map(Some)
                .map_err(|m| QuarryError::plan_at(format!("{name}(): {m}"), loc)),
            Expr::Literal(v) if v.is_null() => Ok(None),
            _ => Err(QuarryError::plan_at(
                format!("the format of {name}() must be a string constant"),
                loc,
            )),
        }
    }
}

/// The SQL timestamp types: TIMESTAMP [WITHOUT TIME ZONE], DATETIME,
/// TIMESTAMP WITH TIME ZONE / TIMESTAMPTZ.
pub fn timestamp_sql_type(t: &ast::DataType, loc: Option<Location>) -> Option<Result<DataType>> {
    use ast::DataType as D;
    use ast::TimezoneInfo as Z;
    let (precision, tz) = match t {
        D::Timestamp(p, z) => (*p, matches!(z, Z::WithTimeZone | Z::Tz)),
        D::TimestampNtz(p) | D::Datetime(p) => (*p, false),
        D::Interval { fields: None, .. } => return Some(Ok(interval_type())),
        _ => return None,
    };
    if precision.is_some() {
        return Some(Err(QuarryError::plan_at(
            format!("{t}: a precision of TIMESTAMP is not supported (it keeps microseconds)"),
            loc,
        )));
    }
    Some(Ok(timestamp_type(tz)))
}
