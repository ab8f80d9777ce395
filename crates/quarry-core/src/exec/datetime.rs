//! The date and time functions over whole arrays: extract / date_part of
//! any part, date_trunc, strftime, strptime, age, make_timestamp, epoch_ms,
//! epoch and to_timestamp, as DuckDB computes them. TIMESTAMP arguments
//! come as microseconds (`Timestamp(Microsecond, _)`); the binder casts a
//! DATE where a function wants a timestamp. The values of a WITH TIME ZONE
//! timestamp are UTC, the session's zone, so its parts are UTC's.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int64Array, IntervalMonthDayNanoArray, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{
    DataType, Float64Type, Int64Type, IntervalMonthDayNano, TimestampMicrosecondType,
};
use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};

use super::strftime::Format;
use super::timestamp::{
    from_datetime, has_zone, timestamp_array, to_datetime, MICROS_PER_DAY, MICROS_PER_HOUR,
    MICROS_PER_MINUTE, MICROS_PER_SECOND,
};
use crate::error::{QuarryError, Result};
use crate::plan::expr::DatePart;
use crate::plan::ScalarFunc;

/// `func` over `arrays`, or None for a function of another module.
pub fn evaluate(
    func: ScalarFunc,
    arrays: &[ArrayRef],
    data_type: &DataType,
) -> Option<Result<ArrayRef>> {
    use ScalarFunc::*;
    Some(match func {
        Extract(part) => extract(part, &arrays[0]),
        DateTrunc(part) => date_trunc(part, &arrays[0]),
        Strftime => strftime(arrays),
        Strptime => strptime(arrays),
        Age => age(arrays),
        MakeTimestamp => make_timestamp(arrays),
        EpochMs if data_type.is_integer() => micros(&arrays[0])
            .map(|t| Arc::new(t.unary::<_, Int64Type>(|v| v.div_euclid(1000))) as ArrayRef),
        EpochMs => from_epoch(&arrays[0], 1000.0, false),
        ToTimestamp => from_epoch(&arrays[0], 1.0, true),
        Epoch => micros(&arrays[0])
            .map(|t| Arc::new(t.unary::<_, Float64Type>(|v| v as f64 / 1e6)) as ArrayRef),
        _ => return None,
    })
}

/// `part` of each interval, taken apart as DuckDB does: the months make
/// years (of 12) and months, the days stay days, the time counts whole (27
/// hours are hour 27), each part keeps the interval's sign; the epoch counts
/// a year as 365.25 days and a month as 30.
fn interval_part(part: DatePart, a: &IntervalMonthDayNanoArray) -> Result<ArrayRef> {
    const SECONDS_PER_DAY: f64 = 86_400.0;
    if part == DatePart::Epoch {
        return Ok(Arc::new(a.unary::<_, Float64Type>(|v| {
            let (years, months) = (v.months / 12, v.months % 12);
            years as f64 * 365.25 * SECONDS_PER_DAY
                + (months as f64 * 30.0 + v.days as f64) * SECONDS_PER_DAY
                + v.nanoseconds as f64 / 1e9
        })));
    }
    if !part.of_intervals() {
        return Err(QuarryError::exec(format!(
            "extract of {part:?} is not defined for an INTERVAL"
        )));
    }
    Ok(Arc::new(a.unary::<_, Int64Type>(|v| {
        let years = (v.months / 12) as i64;
        let micros = v.nanoseconds / 1000;
        match part {
            DatePart::Millennium => years / 1000,
            DatePart::Century => years / 100,
            DatePart::Decade => years / 10,
            DatePart::Year => years,
            DatePart::Quarter => (v.months % 12 / 3 + 1) as i64,
            DatePart::Month => (v.months % 12) as i64,
            DatePart::Day => v.days as i64,
            DatePart::Hour => micros / MICROS_PER_HOUR,
            DatePart::Minute => micros / MICROS_PER_MINUTE % 60,
            DatePart::Second => micros / MICROS_PER_SECOND % 60,
            DatePart::Millisecond => micros / 1000 % 60_000,
            DatePart::Microsecond => micros % (60 * MICROS_PER_SECOND),
            // (refused above)
            _ => 0,
        }
    })))
}

/// The timestamps of `a` (a DATE becomes its midnight).
fn micros(a: &ArrayRef) -> Result<TimestampMicrosecondArray> {
    let a = match a.data_type() {
        DataType::Timestamp(_, _) => a.clone(),
        _ => super::expr::cast_checked(a, &super::timestamp::timestamp_type(false))?,
    };
    Ok(a.as_primitive::<TimestampMicrosecondType>().clone())
}

fn range_error(what: &str) -> QuarryError {
    QuarryError::exec(format!("{what} is out of the TIMESTAMP range"))
}

/// Applies `f` to each non-NULL timestamp's calendar date and time.
fn per_datetime<T>(
    a: &ArrayRef,
    f: impl Fn(i64, NaiveDateTime) -> Option<T>,
) -> Result<Vec<Option<T>>> {
    micros(a)?
        .iter()
        .map(|v| match v {
            None => Ok(None),
            Some(v) => {
                let dt = to_datetime(v).ok_or_else(|| range_error("a value"))?;
                f(v, dt).map(Some).ok_or_else(|| range_error("the result"))
            }
        })
        .collect()
}

/// extract(part FROM x) / date_part('part', x): BIGINT, DOUBLE for epoch.
pub fn extract(part: DatePart, a: &ArrayRef) -> Result<ArrayRef> {
    if let DataType::Interval(_) = a.data_type() {
        return interval_part(part, a.as_primitive());
    }
    if part == DatePart::Epoch {
        return evaluate(
            ScalarFunc::Epoch,
            std::slice::from_ref(a),
            &DataType::Float64,
        )
        .unwrap_or_else(|| Err(QuarryError::exec("internal error: no epoch")));
    }
    let values = per_datetime(a, |v, dt| {
        let year = dt.year() as i64;
        let second = dt.second() as i64;
        let micro = v.rem_euclid(MICROS_PER_SECOND);
        Some(match part {
            DatePart::Year => year,
            DatePart::Quarter => (dt.month() as i64 - 1) / 3 + 1,
            DatePart::Month => dt.month() as i64,
            DatePart::Day => dt.day() as i64,
            DatePart::DayOfWeek => dt.weekday().num_days_from_sunday() as i64,
            DatePart::IsoDayOfWeek => dt.weekday().number_from_monday() as i64,
            DatePart::DayOfYear => dt.ordinal() as i64,
            DatePart::Week => dt.iso_week().week() as i64,
            DatePart::IsoYear => dt.iso_week().year() as i64,
            DatePart::Hour => dt.hour() as i64,
            DatePart::Minute => dt.minute() as i64,
            DatePart::Second => second,
            DatePart::Millisecond => second * 1000 + micro / 1000,
            DatePart::Microsecond => second * MICROS_PER_SECOND + micro,
            DatePart::Decade => year.div_euclid(10),
            DatePart::Century => {
                if year > 0 {
                    (year - 1) / 100 + 1
                } else {
                    -((-year) / 100 + 1)
                }
            }
            DatePart::Millennium => {
                if year > 0 {
                    (year - 1) / 1000 + 1
                } else {
                    -((-year) / 1000 + 1)
                }
            }
            DatePart::Epoch => return None,
        })
    })?;
    Ok(Arc::new(Int64Array::from(values)))
}

/// The first microsecond of `part` holding `dt`.
fn truncate(part: DatePart, v: i64, dt: NaiveDateTime) -> Option<i64> {
    let midnight = |d: NaiveDate| from_datetime(d.and_hms_opt(0, 0, 0)?);
    let year_start = |y: i32| midnight(NaiveDate::from_ymd_opt(y, 1, 1)?);
    let y = dt.year();
    let floor_to = |unit: i64| Some(v - v.rem_euclid(unit));
    match part {
        DatePart::Microsecond => Some(v),
        DatePart::Millisecond => floor_to(1000),
        DatePart::Second => floor_to(MICROS_PER_SECOND),
        DatePart::Minute => floor_to(MICROS_PER_MINUTE),
        DatePart::Hour => floor_to(MICROS_PER_HOUR),
        DatePart::Day => floor_to(MICROS_PER_DAY),
        DatePart::Week => {
            let monday =
                dt.date() - chrono::Duration::days(dt.weekday().num_days_from_monday() as i64);
            midnight(monday)
        }
        DatePart::Month => midnight(NaiveDate::from_ymd_opt(y, dt.month(), 1)?),
        DatePart::Quarter => midnight(NaiveDate::from_ymd_opt(y, (dt.month() - 1) / 3 * 3 + 1, 1)?),
        DatePart::Year => year_start(y),
        DatePart::Decade => year_start(y.div_euclid(10) * 10),
        // (as DuckDB: the century of 2024 starts in 2000, not 2001)
        DatePart::Century => year_start(y.div_euclid(100) * 100),
        DatePart::Millennium => year_start(y.div_euclid(1000) * 1000),
        DatePart::IsoYear => {
            let week = dt.iso_week();
            midnight(NaiveDate::from_isoywd_opt(
                week.year(),
                1,
                chrono::Weekday::Mon,
            )?)
        }
        _ => None,
    }
}

/// date_trunc(part, ts): the timestamp's type kept.
pub fn date_trunc(part: DatePart, a: &ArrayRef) -> Result<ArrayRef> {
    let values = per_datetime(a, |v, dt| truncate(part, v, dt))?;
    Ok(timestamp_array(
        TimestampMicrosecondArray::from(values),
        has_zone(a.data_type()),
    ))
}

/// The one format of a call (the binder made it a constant).
fn format_of(a: &ArrayRef) -> Result<Option<Format>> {
    let f = arrow::compute::cast(a, &DataType::Utf8)?;
    let f = f.as_string::<i32>();
    match f.iter().flatten().next() {
        None => Ok(None),
        Some(text) => Format::compile(text).map(Some).map_err(QuarryError::exec),
    }
}

/// strftime(ts | date, format) → VARCHAR.
fn strftime(arrays: &[ArrayRef]) -> Result<ArrayRef> {
    let Some(format) = format_of(&arrays[1])? else {
        return Ok(arrow::array::new_null_array(
            &DataType::Utf8,
            arrays[0].len(),
        ));
    };
    let tz = has_zone(arrays[0].data_type());
    let out: StringArray = micros(&arrays[0])?
        .iter()
        .map(|v| match v {
            None => Ok(None),
            Some(v) => format
                .print(v, tz)
                .map(Some)
                .ok_or_else(|| range_error("a value")),
        })
        .collect::<Result<_>>()?;
    Ok(Arc::new(out))
}

/// strptime(text, format) → TIMESTAMP; text that does not fit is an error.
fn strptime(arrays: &[ArrayRef]) -> Result<ArrayRef> {
    let Some(format) = format_of(&arrays[1])? else {
        return Ok(arrow::array::new_null_array(
            &super::timestamp::timestamp_type(false),
            arrays[0].len(),
        ));
    };
    let text = arrow::compute::cast(&arrays[0], &DataType::Utf8)?;
    let out: TimestampMicrosecondArray = text
        .as_string::<i32>()
        .iter()
        .map(|s| {
            s.map(|s| format.parse(s))
                .transpose()
                .map_err(QuarryError::exec)
        })
        .collect::<Result<_>>()?;
    Ok(Arc::new(out))
}

/// age(a, b): the years, months, days and time from b to a, each field
/// borrowed from the next larger as DuckDB (and PostgreSQL) do.
fn age(arrays: &[ArrayRef]) -> Result<ArrayRef> {
    let (a, b) = (micros(&arrays[0])?, micros(&arrays[1])?);
    let out: IntervalMonthDayNanoArray = a
        .iter()
        .zip(b.iter())
        .map(|(x, y)| match (x, y) {
            (Some(x), Some(y)) => age_of(x, y).map(Some).ok_or_else(|| range_error("a value")),
            _ => Ok(None),
        })
        .collect::<Result<_>>()?;
    Ok(Arc::new(out))
}

fn days_in_month(year: i32, month: u32) -> i64 {
    let next = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)
    };
    match (next, NaiveDate::from_ymd_opt(year, month, 1)) {
        (Some(n), Some(f)) => n.signed_duration_since(f).num_days(),
        _ => 31,
    }
}

pub fn age_of(t1: i64, t2: i64) -> Option<IntervalMonthDayNano> {
    let (d1, d2) = (to_datetime(t1)?, to_datetime(t2)?);
    let field = |f: fn(&NaiveDateTime) -> i64| f(&d1) - f(&d2);
    let mut years = field(|d| d.year() as i64);
    let mut months = field(|d| d.month() as i64);
    let mut days = field(|d| d.day() as i64);
    let mut hours = field(|d| d.hour() as i64);
    let mut minutes = field(|d| d.minute() as i64);
    let mut seconds = field(|d| d.second() as i64);
    let mut micros = t1.rem_euclid(MICROS_PER_SECOND) - t2.rem_euclid(MICROS_PER_SECOND);
    let flipped = t1 < t2;
    if flipped {
        for f in [
            &mut years,
            &mut months,
            &mut days,
            &mut hours,
            &mut minutes,
            &mut seconds,
            &mut micros,
        ] {
            *f = -*f;
        }
    }
    while micros < 0 {
        micros += MICROS_PER_SECOND;
        seconds -= 1;
    }
    while seconds < 0 {
        seconds += 60;
        minutes -= 1;
    }
    while minutes < 0 {
        minutes += 60;
        hours -= 1;
    }
    while hours < 0 {
        hours += 24;
        days -= 1;
    }
    while days < 0 {
        // the days of the earlier timestamp's month
        let d = if flipped { &d1 } else { &d2 };
        days += days_in_month(d.year(), d.month());
        months -= 1;
    }
    while months < 0 {
        months += 12;
        years -= 1;
    }
    let sign = if flipped { -1 } else { 1 };
    let time = hours * MICROS_PER_HOUR
        + minutes * MICROS_PER_MINUTE
        + seconds * MICROS_PER_SECOND
        + micros;
    Some(IntervalMonthDayNano::new(
        i32::try_from(sign * (years * 12 + months)).ok()?,
        i32::try_from(sign * days).ok()?,
        sign * time * 1000,
    ))
}

/// make_timestamp(y, m, d, h, min, s) or make_timestamp(micros).
fn make_timestamp(arrays: &[ArrayRef]) -> Result<ArrayRef> {
    if arrays.len() == 1 {
        let v = arrow::compute::cast(&arrays[0], &DataType::Int64)?;
        let out: TimestampMicrosecondArray = v.as_primitive::<Int64Type>().reinterpret_cast();
        return Ok(Arc::new(out));
    }
    let ints = arrays[..5]
        .iter()
        .map(|a| arrow::compute::cast(a, &DataType::Int64))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let secs = arrow::compute::cast(&arrays[5], &DataType::Float64)?;
    let secs = secs.as_primitive::<Float64Type>();
    let ints: Vec<&Int64Array> = ints.iter().map(|a| a.as_primitive::<Int64Type>()).collect();
    let out: TimestampMicrosecondArray = (0..secs.len())
        .map(|i| {
            if secs.is_null(i) || ints.iter().any(|a| a.is_null(i)) {
                return Ok(None);
            }
            let [y, mo, d, h, mi] = [0, 1, 2, 3, 4].map(|k| ints[k].value(i));
            let s = secs.value(i);
            let date = i32::try_from(y).ok().and_then(|y| {
                NaiveDate::from_ymd_opt(y, u32::try_from(mo).ok()?, u32::try_from(d).ok()?)
            });
            let Some(date) = date else {
                return Err(QuarryError::exec(format!(
                    "make_timestamp: no such date {y}-{mo}-{d}"
                )));
            };
            if !(0..24).contains(&h) || !(0..60).contains(&mi) || !(0.0..60.0).contains(&s) {
                return Err(QuarryError::exec(format!(
                    "make_timestamp: no such time {h}:{mi}:{s}"
                )));
            }
            let time = h * MICROS_PER_HOUR + mi * MICROS_PER_MINUTE + (s * 1e6).round() as i64;
            date.and_hms_opt(0, 0, 0)
                .and_then(from_datetime)
                .and_then(|m| m.checked_add(time))
                .map(Some)
                .ok_or_else(|| range_error("make_timestamp's value"))
        })
        .collect::<Result<_>>()?;
    Ok(Arc::new(out))
}

/// A number of `per_second`ths of a second since 1970 as a timestamp
/// (epoch_ms(ms) → TIMESTAMP, to_timestamp(seconds) → WITH TIME ZONE).
fn from_epoch(a: &ArrayRef, per_second: f64, tz: bool) -> Result<ArrayRef> {
    let out: TimestampMicrosecondArray = if a.data_type().is_integer() && per_second == 1000.0 {
        let v = arrow::compute::cast(a, &DataType::Int64)?;
        v.as_primitive::<Int64Type>()
            .iter()
            .map(|v| {
                v.map(|v| v.checked_mul(1000).ok_or_else(|| range_error("the epoch")))
                    .transpose()
            })
            .collect::<Result<_>>()?
    } else {
        let v = arrow::compute::cast(a, &DataType::Float64)?;
        let f: &Float64Array = v.as_primitive::<Float64Type>();
        f.iter()
            .map(|v| {
                v.map(|v| {
                    let m = (v * (1e6 / per_second)).round();
                    if m.is_finite() && m.abs() < 9.2e18 {
                        Ok(m as i64)
                    } else {
                        Err(range_error("the epoch"))
                    }
                })
                .transpose()
            })
            .collect::<Result<_>>()?
    };
    Ok(timestamp_array(out, tz))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::timestamp::{format_interval, parse_timestamp};

    fn ts(s: &str) -> i64 {
        parse_timestamp(s, false).unwrap()
    }

    #[test]
    fn age_borrows_as_duckdb() {
        let age = |a: &str, b: &str| format_interval(age_of(ts(a), ts(b)).unwrap());
        assert_eq!(
            age("2024-05-06", "2020-01-09 10:00"),
            "4 years 3 months 27 days 14:00:00"
        );
        assert_eq!(
            age("2020-01-09 10:00", "2024-05-06"),
            "-4 years -3 months -27 days -14:00:00"
        );
        assert_eq!(age("2024-01-31", "2023-02-28"), "11 months 3 days");
        assert_eq!(age("2024-03-01", "2024-01-31"), "1 month 1 day");
        assert_eq!(
            age("2024-03-01 00:00", "2024-01-31 10:00"),
            "1 month 14:00:00"
        );
    }

    #[test]
    fn truncates_as_duckdb() {
        let t = |p: DatePart, s: &str| {
            let v = ts(s);
            crate::exec::timestamp::format_timestamp(
                truncate(p, v, to_datetime(v).unwrap()).unwrap(),
                false,
            )
        };
        assert_eq!(t(DatePart::Week, "2024-05-09 07:08"), "2024-05-06 00:00:00");
        assert_eq!(
            t(DatePart::Quarter, "2024-05-09 07:08"),
            "2024-04-01 00:00:00"
        );
        assert_eq!(t(DatePart::Century, "2024-05-06"), "2000-01-01 00:00:00");
        assert_eq!(t(DatePart::Day, "1969-12-31 10:00"), "1969-12-31 00:00:00");
        assert_eq!(
            t(DatePart::Millisecond, "2024-05-09 07:08:09.123456"),
            "2024-05-09 07:08:09.123"
        );
    }
}
