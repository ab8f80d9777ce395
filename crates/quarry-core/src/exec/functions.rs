//! The string and math functions of the SQL library, over whole arrays.
//! Text arguments come as `Utf8` (the caller casts views and literals),
//! numbers of the math functions as `Float64` (decimals' floor and ceil
//! keep their type). A NULL argument gives NULL, except in concat (NULLs
//! skipped) and greatest/least (NULLs ignored), as in DuckDB.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Decimal128Array, Float64Array, Int64Array, StringArray,
};
use arrow::compute::kernels::cmp;
use arrow::datatypes::{DataType, Decimal128Type, Float64Type, Int64Type};

use crate::error::{QuarryError, Result};
use crate::plan::expr::TrimSide;
use crate::plan::ScalarFunc;

/// `func` over `arrays` (all of one length), or None for a function this
/// module does not evaluate.
pub fn evaluate(
    func: ScalarFunc,
    arrays: &[ArrayRef],
    data_type: &DataType,
) -> Option<Result<ArrayRef>> {
    use ScalarFunc::*;
    Some(match func {
        Concat => concat(arrays),
        Replace => {
            texts(arrays).map(|t| map_text(&t, |row| Some(row[0]?.replace(row[1]?, row[2]?))))
        }
        Trim(side) => texts(arrays).map(|t| {
            map_text(&t, |row| {
                trim(side, row[0]?, row.get(1).copied().unwrap_or(Some(" "))?)
            })
        }),
        StartsWith => texts(arrays).map(|t| map_bool(&t, |a, b| a.starts_with(b))),
        EndsWith => texts(arrays).map(|t| map_bool(&t, |a, b| a.ends_with(b))),
        Contains => texts(arrays).map(|t| map_bool(&t, |a, b| a.contains(b))),
        Strpos => texts(arrays).map(|t| strpos(&t)),
        Reverse => texts(arrays).map(|t| map_text(&t, |row| Some(row[0]?.chars().rev().collect()))),
        Left | Right | Repeat => text_and_count(arrays).and_then(|(s, n)| {
            let out = s
                .iter()
                .zip(n.iter())
                .map(|(s, n)| match (s, n) {
                    (Some(s), Some(n)) => text_count(func, s, n).map(Some),
                    _ => Ok(None),
                })
                .collect::<Result<StringArray>>()?;
            Ok(Arc::new(out) as ArrayRef)
        }),
        Lpad | Rpad => pad(func, arrays),
        SplitPart => split_part(arrays),
        RegexpMatches | RegexpFullMatch | RegexpReplace | RegexpExtract => {
            super::regexp::evaluate(func, arrays)
        }
        NullIf => nullif(arrays),
        Greatest | Least => extreme(func == Greatest, arrays),
        Sqrt => floats(arrays, f64::sqrt),
        Exp => floats(arrays, f64::exp),
        Ln => floats(arrays, f64::ln),
        Log10 => floats(arrays, f64::log10),
        Power => power(arrays),
        Sign => sign(arrays),
        MakeDate => make_date(arrays),
        Floor | Ceil => round_to_integer(func == Floor, arrays, data_type),
        TryCast => super::expr::cast_or_null(&arrays[0], data_type),
        _ => return None,
    })
}

fn cast(a: &ArrayRef, t: &DataType) -> Result<ArrayRef> {
    Ok(arrow::compute::cast(a, t)?)
}

/// The arguments as text.
fn texts(arrays: &[ArrayRef]) -> Result<Vec<StringArray>> {
    arrays
        .iter()
        .map(|a| Ok(cast(a, &DataType::Utf8)?.as_string::<i32>().clone()))
        .collect()
}

/// `f` over the rows of text arguments.
fn map_text(args: &[StringArray], f: impl Fn(&[Option<&str>]) -> Option<String>) -> ArrayRef {
    let n = args.first().map_or(0, |a| a.len());
    let mut row = Vec::with_capacity(args.len());
    let out: StringArray = (0..n)
        .map(|i| {
            row.clear();
            row.extend(args.iter().map(|a| a.is_valid(i).then(|| a.value(i))));
            f(&row)
        })
        .collect();
    Arc::new(out)
}

fn map_bool(args: &[StringArray], f: impl Fn(&str, &str) -> bool) -> ArrayRef {
    let out: BooleanArray = args[0]
        .iter()
        .zip(args[1].iter())
        .map(|(a, b)| Some(f(a?, b?)))
        .collect();
    Arc::new(out)
}

fn trim(side: TrimSide, s: &str, chars: &str) -> Option<String> {
    let strip = |c: char| chars.contains(c);
    Some(
        match side {
            TrimSide::Both => s.trim_matches(strip),
            TrimSide::Leading => s.trim_start_matches(strip),
            TrimSide::Trailing => s.trim_end_matches(strip),
        }
        .to_string(),
    )
}

fn concat(arrays: &[ArrayRef]) -> Result<ArrayRef> {
    let args = texts(arrays)?;
    let n = args.first().map_or(0, |a| a.len());
    let out: StringArray = (0..n)
        .map(|i| {
            let mut s = String::new();
            for a in &args {
                if a.is_valid(i) {
                    s.push_str(a.value(i));
                }
            }
            Some(s)
        })
        .collect();
    Ok(Arc::new(out))
}

/// The 1-based character position of the second argument in the first.
fn strpos(args: &[StringArray]) -> ArrayRef {
    let out: Int64Array = args[0]
        .iter()
        .zip(args[1].iter())
        .map(|(s, part)| {
            let (s, part) = (s?, part?);
            Some(
                s.find(part)
                    .map_or(0, |at| s[..at].chars().count() as i64 + 1),
            )
        })
        .collect();
    Arc::new(out)
}

fn text_and_count(arrays: &[ArrayRef]) -> Result<(StringArray, Int64Array)> {
    let s = cast(&arrays[0], &DataType::Utf8)?
        .as_string::<i32>()
        .clone();
    let n = cast(&arrays[1], &DataType::Int64)?
        .as_primitive::<Int64Type>()
        .clone();
    Ok((s, n))
}

/// The longest string repeat, lpad and rpad make: past it the query is an
/// error rather than an allocation the memory budget never saw.
const MAX_RESULT_BYTES: u64 = 64 << 20;

fn check_size(func: ScalarFunc, bytes: u64) -> Result<()> {
    if bytes > MAX_RESULT_BYTES {
        return Err(QuarryError::exec(format!(
            "{}(): a result of {bytes} bytes is too large (at most {MAX_RESULT_BYTES})",
            func.name()
        )));
    }
    Ok(())
}

/// left(s, n) / right(s, n): the first / last n characters (all but the
/// last / first -n for a negative n); repeat(s, n): s n times.
fn text_count(func: ScalarFunc, s: &str, n: i64) -> Result<String> {
    let len = s.chars().count() as i64;
    let keep = if n >= 0 { n.min(len) } else { (len + n).max(0) } as usize;
    Ok(match func {
        ScalarFunc::Left => s.chars().take(keep).collect(),
        ScalarFunc::Right => s.chars().skip(len as usize - keep).collect(),
        _ => {
            let times = n.max(0) as u64;
            check_size(func, (s.len() as u64).saturating_mul(times))?;
            s.repeat(times as usize)
        }
    })
}

/// lpad / rpad(s, n, fill): s cut or filled to n characters.
fn pad(func: ScalarFunc, arrays: &[ArrayRef]) -> Result<ArrayRef> {
    let (s, n) = text_and_count(arrays)?;
    let fill = cast(&arrays[2], &DataType::Utf8)?;
    let fill = fill.as_string::<i32>();
    let out = (0..s.len())
        .map(|i| {
            if s.is_null(i) || n.is_null(i) || fill.is_null(i) {
                return Ok(None);
            }
            let (s, fill) = (s.value(i), fill.value(i));
            let want = n.value(i).max(0) as u64;
            // (the result has `want` characters, at least as many bytes)
            check_size(func, want)?;
            let want = want as usize;
            let len = s.chars().count();
            if len >= want {
                return Ok(Some(s.chars().take(want).collect::<String>()));
            }
            if fill.is_empty() {
                return Ok(Some(s.to_string()));
            }
            let filler: String = fill.chars().cycle().take(want - len).collect();
            Ok(Some(if func == ScalarFunc::Lpad {
                filler + s
            } else {
                s.to_string() + &filler
            }))
        })
        .collect::<Result<StringArray>>()?;
    Ok(Arc::new(out))
}

/// split_part(s, separator, n): the n-th piece counted from 1 (from the
/// end for a negative n), '' past the pieces or for n = 0; an empty
/// separator cuts between characters.
fn split_part(arrays: &[ArrayRef]) -> Result<ArrayRef> {
    let (s, n) = text_and_count(&[arrays[0].clone(), arrays[2].clone()])?;
    let sep = cast(&arrays[1], &DataType::Utf8)?;
    let sep = sep.as_string::<i32>();
    let out: StringArray = (0..s.len())
        .map(|i| {
            if s.is_null(i) || sep.is_null(i) || n.is_null(i) {
                return None;
            }
            let (s, sep, n) = (s.value(i), sep.value(i), n.value(i));
            let pieces: Vec<&str> = if sep.is_empty() {
                s.char_indices()
                    .map(|(at, c)| &s[at..at + c.len_utf8()])
                    .collect()
            } else {
                s.split(sep).collect()
            };
            let at = if n > 0 {
                Some(n as usize - 1)
            } else if n < 0 {
                pieces.len().checked_sub(n.unsigned_abs() as usize)
            } else {
                None
            };
            Some(
                at.and_then(|k| pieces.get(k))
                    .copied()
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect();
    Ok(Arc::new(out))
}

/// nullif(a, b): NULL where a = b, else a (both already of one type).
fn nullif(arrays: &[ArrayRef]) -> Result<ArrayRef> {
    if arrays[0].data_type().is_null() {
        return Ok(arrays[0].clone());
    }
    let equal = cmp::eq(&arrays[0], &arrays[1])?;
    let null = arrow::array::new_null_array(arrays[0].data_type(), arrays[0].len());
    // (a NULL comparison is not equal: a stays)
    let equal = known_true(&equal);
    Ok(arrow::compute::kernels::zip::zip(
        &equal, &null, &arrays[0],
    )?)
}

/// greatest / least of arguments of one type, NULLs ignored.
fn extreme(greatest: bool, arrays: &[ArrayRef]) -> Result<ArrayRef> {
    let mut best = arrays[0].clone();
    if best.data_type().is_null() {
        return Ok(best);
    }
    for a in &arrays[1..] {
        let better = if greatest {
            cmp::gt(a, &best)?
        } else {
            cmp::lt(a, &best)?
        };
        // take `a` where it wins or where best is NULL and a is not
        let better = known_true(&better);
        let fills = arrow::compute::and(
            &arrow::compute::is_null(&best)?,
            &arrow::compute::is_not_null(a)?,
        )?;
        let take = arrow::compute::or(&better, &fills)?;
        best = arrow::compute::kernels::zip::zip(&take, a, &best)?;
    }
    Ok(best)
}

/// True where `b` is true; NULL counts as false.
fn known_true(b: &BooleanArray) -> BooleanArray {
    match b.nulls() {
        Some(_) => arrow::compute::prep_null_mask_filter(b),
        None => b.clone(),
    }
}

fn floats(arrays: &[ArrayRef], f: impl Fn(f64) -> f64) -> Result<ArrayRef> {
    let x = cast(&arrays[0], &DataType::Float64)?;
    let out: Float64Array = x.as_primitive::<Float64Type>().unary(f);
    Ok(Arc::new(out))
}

fn power(arrays: &[ArrayRef]) -> Result<ArrayRef> {
    let x = cast(&arrays[0], &DataType::Float64)?;
    let y = cast(&arrays[1], &DataType::Float64)?;
    let out: Float64Array = arrow::compute::binary(
        x.as_primitive::<Float64Type>(),
        y.as_primitive::<Float64Type>(),
        f64::powf,
    )?;
    Ok(Arc::new(out))
}

fn sign(arrays: &[ArrayRef]) -> Result<ArrayRef> {
    let x = cast(&arrays[0], &DataType::Float64)?;
    let out: Int64Array = x.as_primitive::<Float64Type>().unary(|v| {
        if v > 0.0 {
            1
        } else if v < 0.0 {
            -1
        } else {
            0
        }
    });
    Ok(Arc::new(out))
}

/// floor / ceil: a decimal to a decimal of scale 0, anything else as DOUBLE.
fn round_to_integer(floor: bool, arrays: &[ArrayRef], data_type: &DataType) -> Result<ArrayRef> {
    let x = &arrays[0];
    if let (DataType::Decimal128(_, scale), DataType::Decimal128(p, 0)) = (x.data_type(), data_type)
    {
        let unit = 10i128
            .checked_pow(*scale as u32)
            .ok_or_else(|| QuarryError::exec("floor/ceil: decimal scale out of range"))?;
        let out: Decimal128Array = x.as_primitive::<Decimal128Type>().unary(|v| {
            let q = v.div_euclid(unit);
            if floor || v.rem_euclid(unit) == 0 {
                q
            } else {
                q + 1
            }
        });
        return Ok(Arc::new(out.with_precision_and_scale(*p, 0)?));
    }
    floats(arrays, if floor { f64::floor } else { f64::ceil })
}

/// make_date(year, month, day): days since 1970-01-01, NULL where an
/// argument is; a day the calendar does not have is an error naming it.
fn make_date(arrays: &[ArrayRef]) -> Result<ArrayRef> {
    let parts = arrays
        .iter()
        .map(|a| {
            Ok(cast(a, &DataType::Int64)?
                .as_primitive::<Int64Type>()
                .clone())
        })
        .collect::<Result<Vec<Int64Array>>>()?;
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1)
        .ok_or_else(|| QuarryError::exec("internal error: no epoch"))?;
    let days = (0..parts[0].len())
        .map(|i| {
            let [y, m, d] = [0, 1, 2].map(|p| parts[p].is_valid(i).then(|| parts[p].value(i)));
            let (Some(y), Some(m), Some(d)) = (y, m, d) else {
                return Ok(None);
            };
            let date = i32::try_from(y).ok().and_then(|y| {
                chrono::NaiveDate::from_ymd_opt(y, u32::try_from(m).ok()?, u32::try_from(d).ok()?)
            });
            match date.and_then(|date| i32::try_from((date - epoch).num_days()).ok()) {
                Some(days) => Ok(Some(days)),
                None => Err(QuarryError::exec(format!(
                    "make_date({y}, {m}, {d}): no such date"
                ))),
            }
        })
        .collect::<Result<arrow::array::Date32Array>>()?;
    Ok(Arc::new(days))
}
