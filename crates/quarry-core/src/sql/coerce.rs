//! SQL type coercion: which type two operands meet at, and the casts that
//! get them there. Decimal precision and scale follow the usual SQL rules.

use arrow::datatypes::DataType;
use datafusion_common::ScalarValue;

use crate::error::{Location, QuarryError, Result};
use crate::exec::timestamp::timestamp_type;
use crate::plan::types::{integer_decimal_precision, is_numeric, is_string, sql_type_name};
use crate::plan::{BinaryOp, Expr};

/// Whether the interval `e` is a constant of whole days, months or years
/// (no time of day), so that a DATE moved by it stays a DATE.
fn whole_days(e: &Expr) -> bool {
    match crate::optimizer::constant_folding::fold_expr(e.clone()) {
        Ok(Expr::Literal(ScalarValue::IntervalMonthDayNano(Some(iv)))) => iv.nanoseconds == 0,
        Ok(Expr::Literal(v)) => v.is_null(),
        _ => false,
    }
}

/// The decimal type that holds every value of an integer or decimal type.
/// Integer literals get only the digits they need.
fn as_decimal(e: &Expr, t: &DataType) -> Option<(u8, i8)> {
    match t {
        DataType::Decimal128(p, s) => Some((*p, *s)),
        t if t.is_integer() => {
            if let Expr::Literal(v) = e {
                if let Ok(ScalarValue::Int64(Some(n))) = v.cast_to(&DataType::Int64) {
                    let digits = n.unsigned_abs().to_string().len() as u8;
                    return Some((digits.max(1), 0));
                }
            }
            Some((integer_decimal_precision(t), 0))
        }
        _ => None,
    }
}

/// The common type of two numeric operands.
fn numeric_common(l: &Expr, lt: &DataType, r: &Expr, rt: &DataType) -> DataType {
    if lt.is_floating() || rt.is_floating() {
        return DataType::Float64;
    }
    if lt.is_integer() && rt.is_integer() {
        return wider_integer(lt, rt);
    }
    let (Some((p1, s1)), Some((p2, s2))) = (as_decimal(l, lt), as_decimal(r, rt)) else {
        return DataType::Float64;
    };
    let scale = s1.max(s2);
    let int_digits = (p1 as i16 - s1 as i16).max(p2 as i16 - s2 as i16);
    DataType::Decimal128((int_digits + scale as i16).clamp(1, 38) as u8, scale)
}

/// The wider of two integer types (signed; unsigned 64-bit goes to BIGINT).
fn wider_integer(l: &DataType, r: &DataType) -> DataType {
    let width = |t: &DataType| match t {
        DataType::Int8 => 1,
        DataType::Int16 | DataType::UInt8 => 2,
        DataType::Int32 | DataType::UInt16 => 4,
        _ => 8,
    };
    match width(l).max(width(r)) {
        1 => DataType::Int8,
        2 => DataType::Int16,
        4 => DataType::Int32,
        _ => DataType::Int64,
    }
}

fn cast_to(e: Expr, from: &DataType, to: &DataType) -> Expr {
    if from == to {
        e
    } else {
        e.cast(to.clone())
    }
}

fn mismatch(what: &str, lt: &DataType, rt: &DataType, at: Option<Location>) -> QuarryError {
    QuarryError::plan_at(
        format!(
            "{what} between {} and {}",
            sql_type_name(lt),
            sql_type_name(rt)
        ),
        at,
    )
}

/// The type both sides of a comparison (or IN, CASE branches, …) meet at.
pub fn comparison_type(
    l: &Expr,
    lt: &DataType,
    r: &Expr,
    rt: &DataType,
    at: Option<Location>,
) -> Result<DataType> {
    use DataType::*;
    Ok(match (lt, rt) {
        _ if lt == rt => lt.clone(),
        (Null, t) | (t, Null) => t.clone(),
        _ if is_numeric(lt) && is_numeric(rt) => numeric_common(l, lt, r, rt),
        _ if is_string(lt) && is_string(rt) => {
            if matches!(lt, Utf8View) || matches!(rt, Utf8View) {
                Utf8View
            } else {
                Utf8
            }
        }
        (Date32, t) | (t, Date32) if is_string(t) => Date32,
        // a TIMESTAMP meets WITH TIME ZONE at the latter (the session's
        // zone UTC), a DATE as its midnight, text read as a timestamp
        (Timestamp(_, _), Timestamp(_, _)) => timestamp_type(true),
        (t @ Timestamp(_, _), Date32) | (Date32, t @ Timestamp(_, _)) => t.clone(),
        (t @ Timestamp(_, _), s) | (s, t @ Timestamp(_, _)) if is_string(s) => t.clone(),
        (t @ Interval(_), s) | (s, t @ Interval(_)) if is_string(s) => t.clone(),
        (t, Boolean) | (Boolean, t) if is_string(t) => Boolean,
        _ => return Err(mismatch("cannot compare values: type mismatch", lt, rt, at)),
    })
}

/// Coerces both operands of `op` and builds the expression.
pub fn binary(
    op: BinaryOp,
    l: Expr,
    lt: DataType,
    r: Expr,
    rt: DataType,
    at: Option<Location>,
) -> Result<Expr> {
    use DataType::*;
    if op.is_comparison() {
        let t = comparison_type(&l, &lt, &r, &rt, at)?;
        return Ok(Expr::binary(op, cast_to(l, &lt, &t), cast_to(r, &rt, &t)));
    }
    match op {
        BinaryOp::And | BinaryOp::Or => {
            for t in [&lt, &rt] {
                if !matches!(t, Boolean | Null) {
                    return Err(QuarryError::plan_at(
                        format!(
                            "{} needs BOOLEAN operands, got {}",
                            op.symbol(),
                            sql_type_name(t)
                        ),
                        at,
                    ));
                }
            }
            Ok(Expr::binary(
                op,
                cast_to(l, &lt, &Boolean),
                cast_to(r, &rt, &Boolean),
            ))
        }
        BinaryOp::Concat => Ok(Expr::binary(op, l, r)),
        _ => arithmetic(op, l, lt, r, rt, at),
    }
}

fn arithmetic(
    op: BinaryOp,
    l: Expr,
    lt: DataType,
    r: Expr,
    rt: DataType,
    at: Option<Location>,
) -> Result<Expr> {
    use DataType::*;
    let bad = || {
        QuarryError::plan_at(
            format!(
                "cannot apply '{}' to {} and {}",
                op.symbol(),
                sql_type_name(&lt),
                sql_type_name(&rt)
            ),
            at,
        )
    };
    // NULL takes the other side's type.
    if lt == Null || rt == Null {
        let t = if lt == Null { rt.clone() } else { lt.clone() };
        let t = if t == Null { Int64 } else { t };
        return Ok(Expr::binary(op, cast_to(l, &lt, &t), cast_to(r, &rt, &t)));
    }
    let plus_minus = matches!(op, BinaryOp::Plus | BinaryOp::Minus);
    match (&lt, &rt) {
        // DATE ± whole days, months or years stays a DATE (as TPC-H's date
        // arithmetic wants, where DuckDB gives a TIMESTAMP at midnight); an
        // interval with a time of day makes a TIMESTAMP, as in DuckDB
        (Date32, Interval(_)) if plus_minus && whole_days(&r) => Ok(Expr::binary(op, l, r)),
        (Interval(_), Date32) if op == BinaryOp::Plus && whole_days(&l) => {
            Ok(Expr::binary(op, r, l))
        }
        (Date32, Interval(_)) if plus_minus => {
            Ok(Expr::binary(op, l.cast(timestamp_type(false)), r))
        }
        (Interval(_), Date32) if op == BinaryOp::Plus => {
            Ok(Expr::binary(op, r.cast(timestamp_type(false)), l))
        }
        (Timestamp(_, _), Interval(_)) if plus_minus => Ok(Expr::binary(op, l, r)),
        (Interval(_), Timestamp(_, _)) if op == BinaryOp::Plus => Ok(Expr::binary(op, r, l)),
        // TIMESTAMP − TIMESTAMP (or DATE) is an INTERVAL
        (Timestamp(_, _), Timestamp(_, _) | Date32) | (Date32, Timestamp(_, _))
            if op == BinaryOp::Minus =>
        {
            let t = comparison_type(&l, &lt, &r, &rt, at)?;
            Ok(Expr::binary(op, cast_to(l, &lt, &t), cast_to(r, &rt, &t)))
        }
        (Interval(_), Interval(_)) if plus_minus => Ok(Expr::binary(op, l, r)),
        (Interval(_), n)
            if is_numeric(n) && matches!(op, BinaryOp::Multiply | BinaryOp::Divide) =>
        {
            Ok(Expr::binary(op, l, r))
        }
        (n, Interval(_)) if is_numeric(n) && op == BinaryOp::Multiply => Ok(Expr::binary(op, r, l)),
        _ if is_numeric(&lt) && is_numeric(&rt) => {
            if op == BinaryOp::Divide && !lt.is_floating() && !rt.is_floating() {
                // As in DuckDB: `/` on integers and decimals gives DOUBLE.
                return Ok(Expr::binary(
                    op,
                    cast_to(l, &lt, &Float64),
                    cast_to(r, &rt, &Float64),
                ));
            }
            // Decimal with decimal, or decimal with integer.
            let both_decimal_like =
                !(lt.is_floating() || rt.is_floating() || (lt.is_integer() && rt.is_integer()));
            if both_decimal_like && op != BinaryOp::Modulo {
                // Arrow's decimal kernels take care of differing scales; only
                // integers need to become decimals first.
                let lt2 = match as_decimal(&l, &lt) {
                    Some((p, s)) => Decimal128(p, s),
                    None => return Err(bad()),
                };
                let rt2 = match as_decimal(&r, &rt) {
                    Some((p, s)) => Decimal128(p, s),
                    None => return Err(bad()),
                };
                return Ok(Expr::binary(
                    op,
                    cast_to(l, &lt, &lt2),
                    cast_to(r, &rt, &rt2),
                ));
            }
            let t = numeric_common(&l, &lt, &r, &rt);
            Ok(Expr::binary(op, cast_to(l, &lt, &t), cast_to(r, &rt, &t)))
        }
        _ => Err(bad()),
    }
}
