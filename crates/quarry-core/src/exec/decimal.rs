//! Decimal `+`, `-` and `*` over Decimal128 arrays in one tight loop.
//!
//! arrow's kernels check each value for overflow through a `Result`, which
//! costs more than the arithmetic (TPC-H Q1 spent a quarter of its time
//! there). Here operands whose unscaled values fit 64 bits, the common case,
//! are computed with no check at all, since their results cannot overflow
//! 128 bits; anything else is left to arrow. The result and its type are
//! those of arrow's kernels.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Decimal128Array, PrimitiveArray};
use arrow::buffer::{NullBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, Decimal128Type};

/// The arithmetic of one decimal operator on the unscaled values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecimalOp {
    Add,
    Sub,
    Mul,
}

/// One operand: a whole column, or one value for every row.
pub enum Operand<'a> {
    Array(&'a Decimal128Array),
    Scalar(i128),
}

impl Operand<'_> {
    fn len(&self) -> Option<usize> {
        match self {
            Operand::Array(a) => Some(a.len()),
            Operand::Scalar(_) => None,
        }
    }

    fn nulls(&self) -> Option<&NullBuffer> {
        match self {
            Operand::Array(a) => a.nulls(),
            Operand::Scalar(_) => None,
        }
    }
}

/// The type of `l op r` as arrow's kernels give it (Hive's rules, precision
/// capped at 38), or None where arrow would refuse (a scale past 38).
pub fn result_type(op: DecimalOp, l: (u8, i8), r: (u8, i8)) -> Option<(u8, i8)> {
    let ((p1, s1), (p2, s2)) = (l, r);
    match op {
        DecimalOp::Add | DecimalOp::Sub => {
            let scale = s1.max(s2);
            let digits = (p1 as i16 - s1 as i16).max(p2 as i16 - s2 as i16);
            let precision = (scale as i16 + digits + 1).clamp(1, 38) as u8;
            Some((precision, scale))
        }
        DecimalOp::Mul => {
            let scale = s1 as i16 + s2 as i16;
            let precision = (p1 as u16 + p2 as u16 + 1).min(38) as u8;
            (scale <= 38).then_some((precision, scale as i8))
        }
    }
}

/// `l op r` for Decimal128 operands of types `lt` and `rt`, or None when
/// this path does not apply (values past 64 bits, a scale past 38): the
/// caller then uses arrow's kernel. At least one operand is an array.
pub fn arithmetic(
    op: DecimalOp,
    l: Operand<'_>,
    lt: (u8, i8),
    r: Operand<'_>,
    rt: (u8, i8),
) -> Option<ArrayRef> {
    let (precision, scale) = result_type(op, lt, rt)?;
    let len = l.len().or(r.len())?;
    // Add and subtract bring both sides to the result's scale first.
    let factor = |s: i8| 10i128.checked_pow((scale - s).max(0) as u32);
    let (lf, rf) = match op {
        DecimalOp::Mul => (Some(1), Some(1)),
        _ => (factor(lt.1), factor(rt.1)),
    };
    let (lf, rf) = (lf?, rf?);
    // Unscaled values and factors that fit 64 bits make products that fit
    // 127 bits and sums of two such that fit 128: nothing can overflow, and
    // each product is one widening multiply. Otherwise arrow's checked
    // kernel does it.
    let fits = |o: &Operand<'_>| match o {
        Operand::Array(a) => fits_i64(a.values()),
        Operand::Scalar(x) => fits_i64(&[*x]),
    };
    if !(fits(&l) && fits(&r) && fits_i64(&[lf, rf])) {
        return None;
    }
    let (lf, rf) = (wide(lf), wide(rf));
    // One monomorphic loop per operator (the operator and the scale
    // factors are the same for every row).
    let values = match op {
        DecimalOp::Mul => apply(&l, &r, |a, b| wide(a) * wide(b)),
        DecimalOp::Add if lf == 1 && rf == 1 => apply(&l, &r, |a, b| wide(a) + wide(b)),
        DecimalOp::Sub if lf == 1 && rf == 1 => apply(&l, &r, |a, b| wide(a) - wide(b)),
        DecimalOp::Add => apply(&l, &r, |a, b| wide(a) * lf + wide(b) * rf),
        DecimalOp::Sub => apply(&l, &r, |a, b| wide(a) * lf - wide(b) * rf),
    }?;
    debug_assert_eq!(values.len(), len);
    let nulls = NullBuffer::union(l.nulls(), r.nulls());
    let array = PrimitiveArray::<Decimal128Type>::new(ScalarBuffer::from(values), nulls)
        .with_data_type(DataType::Decimal128(precision, scale));
    Some(Arc::new(array))
}

/// A value known to fit 64 bits, so that the compiler multiplies it with
/// one 64 x 64 -> 128 bit instruction.
#[inline(always)]
fn wide(x: i128) -> i128 {
    x as i64 as i128
}

/// `f` over the rows of the operands; None for two scalars.
#[inline(always)]
fn apply(l: &Operand<'_>, r: &Operand<'_>, f: impl Fn(i128, i128) -> i128) -> Option<Vec<i128>> {
    Some(match (l, r) {
        (Operand::Array(a), Operand::Array(b)) => a
            .values()
            .iter()
            .zip(b.values().iter())
            .map(|(&x, &y)| f(x, y))
            .collect(),
        (Operand::Array(a), Operand::Scalar(y)) => a.values().iter().map(|&x| f(x, *y)).collect(),
        (Operand::Scalar(x), Operand::Array(b)) => b.values().iter().map(|&y| f(*x, y)).collect(),
        (Operand::Scalar(_), Operand::Scalar(_)) => return None,
    })
}

/// True when every value fits 64 bits.
fn fits_i64(values: &[i128]) -> bool {
    // No early exit: a fold the compiler can vectorize.
    values
        .iter()
        .fold(true, |ok, &x| ok & (x == x as i64 as i128))
}

/// The array as Decimal128 with its precision and scale, if it is one.
pub fn as_decimal(a: &dyn Array) -> Option<(&Decimal128Array, (u8, i8))> {
    match a.data_type() {
        DataType::Decimal128(p, s) => Some((a.as_primitive::<Decimal128Type>(), (*p, *s))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::compute::kernels::numeric;

    type ArrowKernel = fn(
        &dyn arrow::array::Datum,
        &dyn arrow::array::Datum,
    ) -> std::result::Result<ArrayRef, arrow::error::ArrowError>;

    fn dec(values: &[i128], p: u8, s: i8) -> Decimal128Array {
        Decimal128Array::from(values.to_vec())
            .with_precision_and_scale(p, s)
            .unwrap()
    }

    /// Our result equals arrow's, value and type, for each operator and
    /// operand shape.
    #[test]
    fn agrees_with_arrow() {
        let a = dec(&[12345, -1, 0, 999_999_999_999_999], 15, 2);
        let b = dec(&[7, 250, -3, 100], 4, 1);
        let arrow_ops: [(DecimalOp, ArrowKernel); 3] = [
            (DecimalOp::Add, numeric::add),
            (DecimalOp::Sub, numeric::sub),
            (DecimalOp::Mul, numeric::mul),
        ];
        for (op, kernel) in arrow_ops {
            let ours =
                arithmetic(op, Operand::Array(&a), (15, 2), Operand::Array(&b), (4, 1)).unwrap();
            let theirs = kernel(&a, &b).unwrap();
            assert_eq!(ours.as_ref(), theirs.as_ref(), "{op:?}");
            // a scalar on the left: 1 - x, as in TPC-H
            let one = dec(&[1], 1, 0);
            let ours =
                arithmetic(op, Operand::Scalar(1), (1, 0), Operand::Array(&a), (15, 2)).unwrap();
            let theirs = kernel(&arrow::array::Scalar::new(&one), &a).unwrap();
            assert_eq!(ours.as_ref(), theirs.as_ref(), "scalar {op:?}");
        }
    }

    #[test]
    fn wide_values_are_left_to_arrow_and_nulls_are_kept() {
        let big = dec(&[i128::MAX / 2, 1], 38, 0);
        let r = arithmetic(
            DecimalOp::Mul,
            Operand::Array(&big),
            (38, 0),
            Operand::Scalar(3),
            (1, 0),
        );
        assert!(r.is_none());
        let with_null = Decimal128Array::from(vec![Some(1), None])
            .with_precision_and_scale(5, 0)
            .unwrap();
        let r = arithmetic(
            DecimalOp::Add,
            Operand::Array(&with_null),
            (5, 0),
            Operand::Scalar(1),
            (1, 0),
        )
        .unwrap();
        let theirs = numeric::add(&with_null, &arrow::array::Scalar::new(dec(&[1], 1, 0))).unwrap();
        assert_eq!(r.as_ref(), theirs.as_ref());
    }
}
