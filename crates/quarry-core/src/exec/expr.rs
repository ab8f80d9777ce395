//! Evaluating bound expressions over a RecordBatch.

use std::sync::Arc;

use arrow::array::{
    make_view, new_null_array, Array, ArrayAccessor, ArrayRef, AsArray, BooleanArray, Datum,
    Int64Array, Scalar, StringArray, StringBuilder,
};
use arrow::buffer::BooleanBuffer;
use arrow::compute::kernels::{boolean, cmp, numeric};
use arrow::compute::{cast_with_options, CastOptions};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use arrow::util::display::FormatOptions;
use datafusion_common::ScalarValue;

use super::{decimal, view_compare};
use crate::error::{QuarryError, Result};
use crate::plan::expr::DatePart;
use crate::plan::{BinaryOp, Expr, ScalarFunc};

/// A value of an expression over a batch: a whole column or one scalar.
#[derive(Debug, Clone)]
pub enum Value {
    Array(ArrayRef),
    Scalar(ScalarValue),
}

impl Value {
    pub fn into_array(self, len: usize) -> Result<ArrayRef> {
        match self {
            Value::Array(a) => Ok(a),
            Value::Scalar(s) => Ok(s.to_array_of_size(len)?),
        }
    }

    fn datum(&self) -> Result<Box<dyn Datum + '_>> {
        Ok(match self {
            Value::Array(a) => Box::new(a.clone()),
            Value::Scalar(s) => Box::new(Scalar::new(s.to_array_of_size(1)?)),
        })
    }

    fn is_scalar(&self) -> bool {
        matches!(self, Value::Scalar(_))
    }
}

/// Wraps a kernel result: if every input was a scalar the result is one too.
fn finish(result: ArrayRef, all_scalar: bool) -> Result<Value> {
    if all_scalar {
        Ok(Value::Scalar(ScalarValue::try_from_array(&result, 0)?))
    } else {
        Ok(Value::Array(result))
    }
}

/// Evaluates `expr` over `batch` into a column of `batch.num_rows()` values.
pub fn evaluate_array(expr: &Expr, batch: &RecordBatch) -> Result<ArrayRef> {
    evaluate(expr, batch)?.into_array(batch.num_rows())
}

/// Evaluates a predicate; NULL counts as false.
pub fn evaluate_predicate(expr: &Expr, batch: &RecordBatch) -> Result<BooleanArray> {
    let v = evaluate_array(expr, batch)?;
    let b = v.as_boolean_opt().ok_or_else(|| {
        QuarryError::exec(format!("predicate is not boolean but {}", v.data_type()))
    })?;
    Ok(match b.nulls() {
        Some(_) => arrow::compute::prep_null_mask_filter(b),
        None => b.clone(),
    })
}

pub fn evaluate(expr: &Expr, batch: &RecordBatch) -> Result<Value> {
    match expr {
        Expr::Column(i) => Ok(Value::Array(batch.column(*i).clone())),
        Expr::Literal(v) => Ok(Value::Scalar(v.clone())),
        Expr::Binary { op, left, right } => {
            let l = evaluate(left, batch)?;
            let r = evaluate(right, batch)?;
            binary(*op, &l, &r, batch.num_rows())
        }
        Expr::Not(e) => evaluate_not(evaluate(e, batch)?, batch.num_rows()),
        Expr::Negative(e) => {
            let v = evaluate(e, batch)?;
            let scalar = v.is_scalar();
            let a = v.into_array(if scalar { 1 } else { batch.num_rows() })?;
            finish(numeric::neg(&a)?, scalar)
        }
        Expr::IsNull(e) | Expr::IsNotNull(e) => {
            let v = evaluate(e, batch)?;
            let scalar = v.is_scalar();
            let a = v.into_array(if scalar { 1 } else { batch.num_rows() })?;
            let r = if matches!(expr, Expr::IsNull(_)) {
                arrow::compute::is_null(&a)?
            } else {
                arrow::compute::is_not_null(&a)?
            };
            finish(Arc::new(r), scalar)
        }
        Expr::Cast { expr: inner, to } => {
            let v = evaluate(inner, batch)?;
            let scalar = v.is_scalar();
            let a = v.into_array(if scalar { 1 } else { batch.num_rows() })?;
            finish(cast_checked(&a, to)?, scalar)
        }
        Expr::Case {
            branches,
            else_expr,
            data_type,
        } => case(branches, else_expr.as_deref(), data_type, batch),
        Expr::InList {
            expr: e,
            list,
            negated,
        } => {
            let v = evaluate(e, batch)?;
            if let Some(result) = in_string_list(&v, list, *negated) {
                return Ok(result);
            }
            let n = batch.num_rows();
            let mut acc: Option<Value> = None;
            for item in list {
                let iv = evaluate(item, batch)?;
                let eq = binary(BinaryOp::Eq, &v, &iv, n)?;
                acc = Some(match acc {
                    None => eq,
                    Some(prev) => binary(BinaryOp::Or, &prev, &eq, n)?,
                });
            }
            let acc = acc.unwrap_or(Value::Scalar(ScalarValue::Boolean(Some(false))));
            if *negated {
                evaluate_not(acc, n)
            } else {
                Ok(acc)
            }
        }
        Expr::Like {
            expr: e,
            pattern,
            negated,
            case_insensitive,
        } => {
            let v = evaluate(e, batch)?;
            let p = evaluate(pattern, batch)?;
            if let (
                Value::Array(a),
                Value::Scalar(
                    ScalarValue::Utf8(Some(p))
                    | ScalarValue::Utf8View(Some(p))
                    | ScalarValue::LargeUtf8(Some(p)),
                ),
                false,
            ) = (&v, &p, case_insensitive)
            {
                if let Some(r) = super::like::like_percent(a, p, *negated) {
                    return Ok(Value::Array(Arc::new(r)));
                }
            }
            let all_scalar = v.is_scalar() && p.is_scalar();
            let (vd, pd) = (v.datum()?, p.datum()?);
            let r = match (negated, case_insensitive) {
                (false, false) => {
                    arrow::compute::kernels::comparison::like(vd.as_ref(), pd.as_ref())?
                }
                (true, false) => {
                    arrow::compute::kernels::comparison::nlike(vd.as_ref(), pd.as_ref())?
                }
                (false, true) => {
                    arrow::compute::kernels::comparison::ilike(vd.as_ref(), pd.as_ref())?
                }
                (true, true) => {
                    arrow::compute::kernels::comparison::nilike(vd.as_ref(), pd.as_ref())?
                }
            };
            finish(Arc::new(r), all_scalar)
        }
        Expr::Function {
            func,
            args,
            data_type,
        } => function(*func, args, data_type, batch),
        Expr::Aggregate(_)
        | Expr::Window(_)
        | Expr::OuterColumn { .. }
        | Expr::SubqueryRef { .. } => Err(QuarryError::exec(
            "internal error: a binder-only expression reached execution",
        )),
    }
}

fn evaluate_not(v: Value, n: usize) -> Result<Value> {
    let scalar = v.is_scalar();
    let a = v.into_array(if scalar { 1 } else { n })?;
    finish(Arc::new(boolean::not(as_bool(&a)?)?), scalar)
}

/// The array as booleans; the binder makes sure of the type, so a mismatch is
/// an internal error, never a panic.
fn as_bool(a: &ArrayRef) -> Result<&BooleanArray> {
    a.as_boolean_opt().ok_or_else(|| {
        QuarryError::exec(format!(
            "internal error: expected BOOLEAN, got {}",
            a.data_type()
        ))
    })
}

/// Casts that fail on bad values instead of producing NULL.
pub fn cast_checked(a: &ArrayRef, to: &DataType) -> Result<ArrayRef> {
    cast_rounded(a, to, false)
}

/// TRY_CAST: a value that does not convert becomes NULL.
pub fn cast_or_null(a: &ArrayRef, to: &DataType) -> Result<ArrayRef> {
    cast_rounded(a, to, true)
}

fn cast_rounded(a: &ArrayRef, to: &DataType, safe: bool) -> Result<ArrayRef> {
    if a.data_type() == to {
        return Ok(a.clone());
    }
    if let Some(result) = super::timestamp::cast(a, to, safe) {
        return result;
    }
    let opts = CastOptions {
        safe,
        format_options: FormatOptions::default(),
    };
    // As DuckDB and PostgreSQL: CAST(3.7 AS INTEGER) is 4, not 3.
    let rounded;
    let a = if to.is_integer()
        && (a.data_type().is_floating() || matches!(a.data_type(), DataType::Decimal128(_, _)))
    {
        rounded = round(std::slice::from_ref(a), a.data_type())?;
        &rounded
    } else {
        a
    };
    cast_with_options(a, to, &opts).map_err(|e| {
        QuarryError::exec(format!(
            "cannot cast {} to {}: {e}",
            crate::plan::types::sql_type_name(a.data_type()),
            crate::plan::types::sql_type_name(to)
        ))
    })
}

fn binary(op: BinaryOp, l: &Value, r: &Value, n: usize) -> Result<Value> {
    let all_scalar = l.is_scalar() && r.is_scalar();
    let len = if all_scalar { 1 } else { n };
    let interval = |v: &Value| matches!(data_type(v).as_ref(), DataType::Interval(_));
    let temporal =
        |v: &Value| interval(v) || matches!(data_type(v).as_ref(), DataType::Timestamp(_, _));
    if (op.is_arithmetic() && (temporal(l) || temporal(r))) || (op.is_comparison() && interval(l)) {
        let (la, ra) = (l.clone().into_array(len)?, r.clone().into_array(len)?);
        if let Some(result) = super::timestamp::binary(op, &la, &ra) {
            return finish(result?, all_scalar);
        }
    }
    let result: ArrayRef = match op {
        BinaryOp::And | BinaryOp::Or => {
            let la = l.clone().into_array(len)?;
            let ra = r.clone().into_array(len)?;
            let (lb, rb) = (as_bool(&la)?, as_bool(&ra)?);
            Arc::new(if op == BinaryOp::And {
                boolean::and_kleene(lb, rb)?
            } else {
                boolean::or_kleene(lb, rb)?
            })
        }
        BinaryOp::Concat => {
            let la = cast_checked(&l.clone().into_array(len)?, &DataType::Utf8)?;
            let ra = cast_checked(&r.clone().into_array(len)?, &DataType::Utf8)?;
            let (ls, rs) = (la.as_string::<i32>(), ra.as_string::<i32>());
            let out: StringArray = ls
                .iter()
                .zip(rs.iter())
                .map(|(a, b)| match (a, b) {
                    (Some(a), Some(b)) => Some(format!("{a}{b}")),
                    _ => None,
                })
                .collect();
            Arc::new(out)
        }
        BinaryOp::Plus | BinaryOp::Minus | BinaryOp::Multiply if !all_scalar => {
            match decimal_fast(op, l, r) {
                Some(a) => a,
                None => arrow_binary(op, l, r, len)?,
            }
        }
        BinaryOp::Eq | BinaryOp::NotEq if !all_scalar => match view_eq_text(op, l, r) {
            Some(a) => a,
            None => arrow_binary(op, l, r, len)?,
        },
        _ => arrow_binary(op, l, r, len)?,
    };
    finish(result, all_scalar)
}

fn data_type(v: &Value) -> std::borrow::Cow<'_, DataType> {
    match v {
        Value::Array(a) => std::borrow::Cow::Borrowed(a.data_type()),
        Value::Scalar(s) => std::borrow::Cow::Owned(s.data_type()),
    }
}

/// A string-view column `=` or `<>` a non-NULL string literal (either
/// side), on the views (see `view_compare`); None where that does not apply.
fn view_eq_text(op: BinaryOp, l: &Value, r: &Value) -> Option<ArrayRef> {
    let (array, text) = match (l, r) {
        (Value::Array(a), Value::Scalar(s)) | (Value::Scalar(s), Value::Array(a)) => (a, s),
        _ => return None,
    };
    let text = match text {
        ScalarValue::Utf8View(Some(t)) | ScalarValue::Utf8(Some(t)) => t,
        _ => return None,
    };
    let array = array.as_string_view_opt()?;
    Some(Arc::new(view_compare::eq_text(
        array,
        text,
        op == BinaryOp::NotEq,
    )))
}

/// A Decimal128 operand: its array (None for a scalar), the scalar's
/// unscaled value, and the precision and scale.
type DecimalOperand<'a> = (Option<&'a arrow::array::Decimal128Array>, i128, (u8, i8));

fn decimal_operand(v: &Value) -> Option<DecimalOperand<'_>> {
    match v {
        Value::Array(a) => decimal::as_decimal(a.as_ref()).map(|(a, t)| (Some(a), 0, t)),
        Value::Scalar(ScalarValue::Decimal128(Some(x), p, s)) => Some((None, *x, (*p, *s))),
        Value::Scalar(_) => None,
    }
}

/// Decimal `+ - *` without arrow's per-value checks (see `decimal`), or
/// None where that path does not apply.
fn decimal_fast(op: BinaryOp, l: &Value, r: &Value) -> Option<ArrayRef> {
    let (la, lx, lt) = decimal_operand(l)?;
    let (ra, rx, rt) = decimal_operand(r)?;
    fn operand(a: Option<&arrow::array::Decimal128Array>, x: i128) -> decimal::Operand<'_> {
        match a {
            Some(a) => decimal::Operand::Array(a),
            None => decimal::Operand::Scalar(x),
        }
    }
    let dop = match op {
        BinaryOp::Plus => decimal::DecimalOp::Add,
        BinaryOp::Minus => decimal::DecimalOp::Sub,
        _ => decimal::DecimalOp::Mul,
    };
    decimal::arithmetic(dop, operand(la, lx), lt, operand(ra, rx), rt)
}

/// `l op r` with arrow's kernels, for the operators other than AND, OR and ||.
fn arrow_binary(op: BinaryOp, l: &Value, r: &Value, len: usize) -> Result<ArrayRef> {
    let (ld, rd) = (l.datum()?, r.datum()?);
    let (ld, rd) = (ld.as_ref(), rd.as_ref());
    Ok(match op {
        BinaryOp::Plus => numeric::add(ld, rd).map_err(overflow)?,
        BinaryOp::Minus => numeric::sub(ld, rd).map_err(overflow)?,
        BinaryOp::Multiply => numeric::mul(ld, rd).map_err(overflow)?,
        BinaryOp::Divide => {
            check_no_zero(r, len)?;
            numeric::div(ld, rd).map_err(overflow)?
        }
        BinaryOp::Modulo => {
            check_no_zero(r, len)?;
            numeric::rem(ld, rd).map_err(overflow)?
        }
        BinaryOp::Eq => Arc::new(cmp::eq(ld, rd)?),
        BinaryOp::NotEq => Arc::new(cmp::neq(ld, rd)?),
        BinaryOp::Lt => Arc::new(cmp::lt(ld, rd)?),
        BinaryOp::LtEq => Arc::new(cmp::lt_eq(ld, rd)?),
        BinaryOp::Gt => Arc::new(cmp::gt(ld, rd)?),
        BinaryOp::GtEq => Arc::new(cmp::gt_eq(ld, rd)?),
        BinaryOp::And | BinaryOp::Or | BinaryOp::Concat => {
            return Err(QuarryError::exec(format!(
                "internal error: {op:?} is not an arithmetic or comparison operator"
            )))
        }
    })
}

/// Division by zero is an error for every numeric type (floats would
/// otherwise give infinity).
fn check_no_zero(divisor: &Value, len: usize) -> Result<()> {
    let a = divisor
        .clone()
        .into_array(if divisor.is_scalar() { 1 } else { len })?;
    let zero = ScalarValue::new_zero(a.data_type())?.to_array_of_size(1)?;
    let is_zero = cmp::eq(&a, &Scalar::new(zero))?;
    if is_zero.true_count() > 0 {
        return Err(QuarryError::exec("division by zero"));
    }
    Ok(())
}

fn overflow(e: arrow::error::ArrowError) -> QuarryError {
    match e {
        arrow::error::ArrowError::DivideByZero => QuarryError::exec("division by zero"),
        arrow::error::ArrowError::ArithmeticOverflow(m) => {
            QuarryError::exec(format!("numeric overflow: {m}"))
        }
        other => QuarryError::exec(other.to_string()),
    }
}

/// CASE: each row takes the first branch whose condition is true. A branch's
/// result is computed only on its own rows, so `CASE WHEN x = 0 THEN 0 ELSE
/// 1 / x END` never divides by zero.
fn case(
    branches: &[(Expr, Expr)],
    else_expr: Option<&Expr>,
    data_type: &DataType,
    batch: &RecordBatch,
) -> Result<Value> {
    let n = batch.num_rows();
    // chosen[row] = branch index, or branches.len() for ELSE.
    let mut chosen = vec![branches.len(); n];
    let mut undecided = n;
    for (b, (when, _)) in branches.iter().enumerate() {
        if undecided == 0 {
            break;
        }
        let cond = evaluate_predicate(when, batch)?;
        for (row, c) in chosen.iter_mut().enumerate() {
            if *c == branches.len() && cond.value(row) {
                *c = b;
                undecided -= 1;
            }
        }
    }
    let mut parts: Vec<ArrayRef> = Vec::with_capacity(branches.len() + 1);
    let mut positions = vec![0usize; branches.len() + 1];
    let mut indices: Vec<(usize, usize)> = Vec::with_capacity(n);
    for &c in &chosen {
        indices.push((c, positions[c]));
        positions[c] += 1;
    }
    for b in 0..=branches.len() {
        let expr = if b < branches.len() {
            Some(&branches[b].1)
        } else {
            else_expr
        };
        let rows = positions[b];
        let part = match expr {
            _ if rows == 0 => new_null_array(data_type, 0),
            None => new_null_array(data_type, rows),
            Some(e) => {
                let mask: BooleanArray = chosen.iter().map(|c| Some(*c == b)).collect();
                let sub = arrow::compute::filter_record_batch(batch, &mask)?;
                cast_checked(&evaluate_array(e, &sub)?, data_type)?
            }
        };
        parts.push(part);
    }
    let refs: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
    Ok(Value::Array(arrow::compute::interleave(&refs, &indices)?))
}

fn function(
    func: ScalarFunc,
    args: &[Expr],
    data_type: &DataType,
    batch: &RecordBatch,
) -> Result<Value> {
    let values = args
        .iter()
        .map(|a| evaluate(a, batch))
        .collect::<Result<Vec<_>>>()?;
    let all_scalar = values.iter().all(|v| v.is_scalar());
    let len = if all_scalar { 1 } else { batch.num_rows() };
    let arrays = values
        .into_iter()
        .map(|v| v.into_array(len))
        .collect::<Result<Vec<_>>>()?;
    if let Some(result) = super::functions::evaluate(func, &arrays, data_type) {
        return finish(cast_checked(&result?, data_type)?, all_scalar);
    }
    // (a DATE's calendar parts by arrow's kernel below, the rest there)
    let arrow_date_part = matches!(func, ScalarFunc::Extract(p)
        if p.is_arrow_date_part() && *arrays[0].data_type() == DataType::Date32);
    if !arrow_date_part {
        if let Some(result) = super::datetime::evaluate(func, &arrays, data_type) {
            return finish(cast_checked(&result?, data_type)?, all_scalar);
        }
    }
    let result: ArrayRef = match func {
        ScalarFunc::Extract(part) => {
            use arrow::compute::kernels::temporal::{date_part, DatePart as P};
            let p = match part {
                DatePart::Year => P::Year,
                DatePart::Quarter => P::Quarter,
                DatePart::Month => P::Month,
                DatePart::Day => P::Day,
                DatePart::DayOfWeek => P::DayOfWeekSunday0,
                DatePart::DayOfYear => P::DayOfYear,
                other => {
                    return Err(QuarryError::exec(format!(
                        "internal error: no arrow kernel for extract({other:?})"
                    )))
                }
            };
            cast_checked(&date_part(&arrays[0], p)?, &DataType::Int64)?
        }
        ScalarFunc::Substring => substring(&arrays)?,
        ScalarFunc::Upper | ScalarFunc::Lower => {
            let s = cast_checked(&arrays[0], &DataType::Utf8)?;
            let out: StringArray = s
                .as_string::<i32>()
                .iter()
                .map(|v| {
                    v.map(|v| {
                        if func == ScalarFunc::Upper {
                            v.to_uppercase()
                        } else {
                            v.to_lowercase()
                        }
                    })
                })
                .collect();
            Arc::new(out)
        }
        ScalarFunc::Length => {
            let s = cast_checked(&arrays[0], &DataType::Utf8)?;
            let out: Int64Array = s
                .as_string::<i32>()
                .iter()
                .map(|v| v.map(|v| v.chars().count() as i64))
                .collect();
            Arc::new(out)
        }
        ScalarFunc::Abs => {
            let a = &arrays[0];
            let neg = numeric::neg(a).map_err(overflow)?;
            let is_neg = cmp::lt(
                a,
                &Scalar::new(ScalarValue::new_zero(a.data_type())?.to_array_of_size(1)?),
            )?;
            arrow::compute::kernels::zip::zip(&is_neg, &neg, a)?
        }
        ScalarFunc::Round => round(&arrays, data_type)?,
        ScalarFunc::AssertSingleRow => {
            let counts = cast_checked(&arrays[0], &DataType::Int64)?;
            let counts = counts.as_primitive::<arrow::datatypes::Int64Type>();
            if counts.iter().any(|c| c.is_some_and(|c| c > 1)) {
                return Err(QuarryError::exec(
                    "more than one row returned by a subquery used as an expression",
                ));
            }
            arrays[1].clone()
        }
        ScalarFunc::AverageOf => average_of(&arrays[0], &arrays[1])?,
        ScalarFunc::Grouping => {
            return Err(QuarryError::exec(
                "internal error: grouping() left in a plan",
            ))
        }
        ScalarFunc::Row => match data_type {
            DataType::Struct(fields) => Arc::new(arrow::array::StructArray::try_new(
                fields.clone(),
                arrays.clone(),
                None,
            )?),
            other => {
                return Err(QuarryError::exec(format!(
                    "internal error: row() of type {other}"
                )))
            }
        },
        ScalarFunc::Coalesce => {
            let mut result = arrays[arrays.len() - 1].clone();
            for a in arrays.iter().rev().skip(1) {
                let present = arrow::compute::is_not_null(a)?;
                result = arrow::compute::kernels::zip::zip(&present, a, &result)?;
            }
            result
        }
        other => {
            return Err(QuarryError::exec(format!(
                "internal error: no kernel for {}()",
                other.name()
            )))
        }
    };
    finish(cast_checked(&result, data_type)?, all_scalar)
}

/// `v [NOT] IN (list)` for strings and a list of non-NULL string literals,
/// in one pass over `v` (the general way is a comparison and an OR per
/// item); None for any other.
fn in_string_list(v: &Value, list: &[Expr], negated: bool) -> Option<Value> {
    let Value::Array(a) = v else {
        return None;
    };
    let literal = |e: &Expr| match e {
        Expr::Literal(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::Utf8View(Some(s))
            | ScalarValue::LargeUtf8(Some(s)),
        ) => Some(s.clone()),
        _ => None,
    };
    let items: Vec<String> = list.iter().map(literal).collect::<Option<_>>()?;
    let found = |s: &str| items.iter().any(|i| i == s) != negated;
    let n = a.len();
    let values = match a.data_type() {
        DataType::Utf8View if items.iter().all(|i| i.len() <= 12) => {
            // Strings of at most 12 bytes are their own views: a value is
            // an item when its view, cut to the item's length, is the item's.
            let items: Vec<(u128, u128)> = items
                .iter()
                .map(|i| {
                    let view = make_view(i.as_bytes(), 0, 0);
                    let bits = 32 + 8 * i.len();
                    let mask = if bits == 128 { !0 } else { (1u128 << bits) - 1 };
                    (view, mask)
                })
                .collect();
            let views = a.as_string_view().views();
            // (a pass per item: each compiles to a tight loop)
            let mut found = BooleanBuffer::new_unset(n);
            for (item, mask) in items {
                found = &found | &BooleanBuffer::collect_bool(n, |i| views[i] & mask == item);
            }
            if negated {
                !&found
            } else {
                found
            }
        }
        DataType::Utf8View => {
            let s = a.as_string_view();
            BooleanBuffer::collect_bool(n, |i| found(s.value(i)))
        }
        DataType::Utf8 => {
            let s = a.as_string::<i32>();
            BooleanBuffer::collect_bool(n, |i| found(s.value(i)))
        }
        DataType::LargeUtf8 => {
            let s = a.as_string::<i64>();
            BooleanBuffer::collect_bool(n, |i| found(s.value(i)))
        }
        _ => return None,
    };
    Some(Value::Array(Arc::new(BooleanArray::new(
        values,
        a.logical_nulls(),
    ))))
}

/// substring(s, start [, count]) with 1-based start, counting characters.
fn substring(arrays: &[ArrayRef]) -> Result<ArrayRef> {
    let start = cast_checked(&arrays[1], &DataType::Int64)?;
    let count = match arrays.get(2) {
        Some(c) => Some(cast_checked(c, &DataType::Int64)?),
        None => None,
    };
    let start = start.as_primitive::<arrow::datatypes::Int64Type>();
    let count = count
        .as_ref()
        .map(|c| c.as_primitive::<arrow::datatypes::Int64Type>());
    let s = &arrays[0];
    let out = match s.data_type() {
        DataType::Utf8View => substrings(s.as_string_view(), start, count)?,
        DataType::LargeUtf8 => substrings(s.as_string::<i64>(), start, count)?,
        _ => {
            let s = cast_checked(s, &DataType::Utf8)?;
            substrings(s.as_string::<i32>(), start, count)?
        }
    };
    Ok(Arc::new(out))
}

fn substrings<'a>(
    s: impl ArrayAccessor<Item = &'a str>,
    start: &Int64Array,
    count: Option<&Int64Array>,
) -> Result<StringArray> {
    let mut out = StringBuilder::with_capacity(s.len(), 0);
    for i in 0..s.len() {
        if s.is_null(i) || start.is_null(i) || count.is_some_and(|c| c.is_null(i)) {
            out.append_null();
            continue;
        }
        let count = match count.map(|c| c.value(i)) {
            Some(c) if c < 0 => {
                return Err(QuarryError::exec("negative substring length not allowed"))
            }
            c => c,
        };
        out.append_value(substring_of(s.value(i), start.value(i), count));
    }
    Ok(out.finish())
}

/// The characters of `s` at positions `from` (1-based) to `from + count - 1`
/// (to the end without a count); positions before 1 take a place but are
/// cut off, as SQL says.
fn substring_of(s: &str, from: i64, count: Option<i64>) -> &str {
    let first = from.max(1);
    let end = count.map(|c| from.saturating_add(c));
    if end.is_some_and(|e| e <= first) {
        return "";
    }
    let skip = usize::try_from(first - 1).unwrap_or(usize::MAX);
    let take = end.map(|e| usize::try_from(e - first).unwrap_or(usize::MAX));
    if s.is_ascii() {
        let a = skip.min(s.len());
        let b = take.map_or(s.len(), |t| a.saturating_add(t).min(s.len()));
        return &s[a..b];
    }
    // (the byte where each character starts, then the end)
    let mut bounds = s
        .char_indices()
        .map(|(at, _)| at)
        .chain(std::iter::once(s.len()));
    let a = bounds.nth(skip).unwrap_or(s.len());
    let b = match take {
        Some(t) => bounds.nth(t - 1).unwrap_or(s.len()),
        None => s.len(),
    };
    &s[a..b]
}

fn round(arrays: &[ArrayRef], data_type: &DataType) -> Result<ArrayRef> {
    let digits = match arrays.get(1) {
        Some(d) => {
            let d = cast_checked(d, &DataType::Int64)?;
            let d = d.as_primitive::<arrow::datatypes::Int64Type>();
            if d.is_null(0) {
                0
            } else {
                d.value(0)
            }
        }
        None => 0,
    };
    match arrays[0].data_type() {
        DataType::Decimal128(_, s) => {
            let s = *s as i64;
            let a = arrays[0].as_primitive::<arrow::datatypes::Decimal128Type>();
            let drop = s.saturating_sub(digits).clamp(0, 64) as u32;
            // Past 10^38 (a decimal's widest) every value rounds to 0.
            let Some(factor) = 10i128.checked_pow(drop) else {
                let zeros = a.unary::<_, arrow::datatypes::Decimal128Type>(|_| 0);
                let a = zeros.with_data_type(arrays[0].data_type().clone());
                return cast_checked(&(Arc::new(a) as ArrayRef), data_type);
            };
            let out: arrow::array::Decimal128Array = a.unary(|v| {
                if drop == 0 {
                    return v;
                }
                let half = factor / 2;
                let q = if v >= 0 {
                    (v + half) / factor
                } else {
                    (v - half) / factor
                };
                q * factor
            });
            let a = out.with_data_type(arrays[0].data_type().clone());
            cast_checked(&(Arc::new(a) as ArrayRef), data_type)
        }
        _ => {
            let f = cast_checked(&arrays[0], &DataType::Float64)?;
            // Beyond ±308 digits 10^digits is no longer a finite double.
            let digits = digits.clamp(-400, 400) as i32;
            let p = 10f64.powi(digits);
            let out: arrow::array::Float64Array = f
                .as_primitive::<arrow::datatypes::Float64Type>()
                .unary(|v| match digits {
                    d if d > 308 => v,
                    d if d < -308 => 0.0,
                    _ => (v * p).round() / p,
                });
            Ok(Arc::new(out))
        }
    }
}

/// `average_of(sum, count)`: per row what `avg` gives for a group of
/// `count` values summing to `sum` (a decimal or a double), NULL for none.
fn average_of(sums: &ArrayRef, counts: &ArrayRef) -> Result<ArrayRef> {
    let counts = cast_checked(counts, &DataType::Int64)?;
    let counts = counts.as_primitive::<arrow::datatypes::Int64Type>();
    let out: arrow::array::Float64Array = match sums.data_type() {
        DataType::Decimal128(_, scale) => {
            let sums = sums.as_primitive::<arrow::datatypes::Decimal128Type>();
            sums.iter()
                .zip(counts.iter())
                .map(|(s, c)| match (s, c) {
                    (Some(s), Some(c)) if c > 0 => {
                        Some(super::aggregate::decimal_average(s, *scale as i32, c))
                    }
                    _ => None,
                })
                .collect()
        }
        DataType::Float64 => {
            let sums = sums.as_primitive::<arrow::datatypes::Float64Type>();
            sums.iter()
                .zip(counts.iter())
                .map(|(s, c)| match (s, c) {
                    (Some(s), Some(c)) if c > 0 => Some(s / c as f64),
                    _ => None,
                })
                .collect()
        }
        other => {
            return Err(QuarryError::exec(format!(
                "internal error: average_of a sum of type {other}"
            )))
        }
    };
    Ok(Arc::new(out))
}
