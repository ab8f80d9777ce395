//! TIMESTAMP [WITH TIME ZONE] and INTERVAL values as DuckDB has them. A
//! timestamp counts microseconds since 1970-01-01 00:00:00 (arrow's
//! `Timestamp(Microsecond, None)`; WITH TIME ZONE is the same count in UTC,
//! `Timestamp(Microsecond, Some("UTC"))`, the session's zone being UTC). An
//! interval is months, days and a time part (arrow's IntervalMonthDayNano,
//! whose nanoseconds are whole microseconds here, as DuckDB keeps them).
//!
//! Here: parsing and printing as DuckDB does, the casts to and from text and
//! DATE, and the arithmetic whose meaning arrow's kernels do not share
//! (TIMESTAMP − TIMESTAMP is an INTERVAL of days and time, INTERVAL × number
//! spills fractions into the smaller fields, intervals compare normalized).
//! Every overflow is an error.

use std::borrow::Cow;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, Decimal128Array,
    IntervalMonthDayNanoArray, PrimitiveArray, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{
    DataType, Date32Type, IntervalMonthDayNano, IntervalMonthDayNanoType, IntervalUnit, TimeUnit,
    TimestampMicrosecondType,
};
use arrow::record_batch::RecordBatch;
use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};

use crate::error::{QuarryError, Result};
use crate::plan::BinaryOp;

pub const MICROS_PER_SECOND: i64 = 1_000_000;
pub const MICROS_PER_MINUTE: i64 = 60 * MICROS_PER_SECOND;
pub const MICROS_PER_HOUR: i64 = 60 * MICROS_PER_MINUTE;
pub const MICROS_PER_DAY: i64 = 24 * MICROS_PER_HOUR;
/// The one time zone of TIMESTAMP WITH TIME ZONE values (the session's).
pub const UTC: &str = "UTC";

/// TIMESTAMP, or TIMESTAMP WITH TIME ZONE when `tz`.
pub fn timestamp_type(tz: bool) -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, tz.then(|| UTC.into()))
}

pub fn interval_type() -> DataType {
    DataType::Interval(IntervalUnit::MonthDayNano)
}

/// Whether `t` is a TIMESTAMP WITH TIME ZONE.
pub fn has_zone(t: &DataType) -> bool {
    matches!(t, DataType::Timestamp(_, Some(_)))
}

fn epoch() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(1970, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .unwrap_or_default()
}

/// The calendar date and time of `micros`, None outside chrono's years.
pub fn to_datetime(micros: i64) -> Option<NaiveDateTime> {
    epoch().checked_add_signed(chrono::Duration::microseconds(micros))
}

/// Microseconds since 1970 of `dt`, None when they overflow.
pub fn from_datetime(dt: NaiveDateTime) -> Option<i64> {
    let days = dt.date().signed_duration_since(epoch().date()).num_days();
    let time = dt.time();
    let of_day = time.num_seconds_from_midnight() as i64 * MICROS_PER_SECOND
        + (time.nanosecond() / 1000) as i64;
    days.checked_mul(MICROS_PER_DAY)?.checked_add(of_day)
}

// ------------------------------------------------------------------ parsing

/// A cursor over the text of a timestamp or interval.
struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// 1 to `max` decimal digits.
    fn number(&mut self, max: usize) -> Option<i64> {
        let start = self.i;
        let mut n: i64 = 0;
        while self.i - start < max {
            match self.peek() {
                Some(c @ b'0'..=b'9') => {
                    n = n * 10 + (c - b'0') as i64;
                    self.i += 1;
                }
                _ => break,
            }
        }
        (self.i > start).then_some(n)
    }

    fn at_end(&self) -> bool {
        self.i >= self.s.len()
    }
}

const TIMESTAMP_FORMAT: &str = "expected YYYY-MM-DD[ HH:MM[:SS[.ffffff]]][±HH[:MM]]";

/// The microseconds of a timestamp's text, as DuckDB reads it:
/// `YYYY-MM-DD[( |T)HH:MM[:SS[.fraction]]][Z|±HH[:MM]| UTC]`, the fraction
/// cut to microseconds, `24:00:00` the next midnight. An offset moves a
/// TIMESTAMP WITH TIME ZONE (`tz`) to UTC; a plain TIMESTAMP ignores it, as
/// in DuckDB. The error says what is wrong.
pub fn parse_timestamp(text: &str, tz: bool) -> std::result::Result<i64, String> {
    let mut c = Cursor {
        s: text.as_bytes(),
        i: 0,
    };
    let format = || TIMESTAMP_FORMAT.to_string();
    let range = || "no such date or time".to_string();
    let year = c.number(6).ok_or_else(format)?;
    let month = if c.eat(b'-') { c.number(2) } else { None }.ok_or_else(format)?;
    let day = if c.eat(b'-') { c.number(2) } else { None }.ok_or_else(format)?;
    let date = NaiveDate::from_ymd_opt(year as i32, month as u32, day as u32).ok_or_else(range)?;
    let (mut hour, mut minute, mut second, mut micros) = (0, 0, 0, 0);
    if c.eat(b' ') || c.eat(b'T') {
        hour = c.number(2).ok_or_else(format)?;
        minute = if c.eat(b':') { c.number(2) } else { None }.ok_or_else(format)?;
        if c.eat(b':') {
            second = c.number(2).ok_or_else(format)?;
            if c.eat(b'.') {
                let start = c.i;
                let mut digits = 0;
                while let Some(d @ b'0'..=b'9') = c.peek() {
                    if digits < 6 {
                        micros = micros * 10 + (d - b'0') as i64;
                        digits += 1;
                    }
                    c.i += 1;
                }
                if c.i == start {
                    return Err(format());
                }
                micros *= 10i64.pow(6 - digits);
            }
        }
    }
    let midnight_next = hour == 24 && minute == 0 && second == 0 && micros == 0;
    if (hour > 23 && !midnight_next) || minute > 59 || second > 59 {
        return Err(range());
    }
    let offset = parse_offset(&mut c).ok_or_else(format)?;
    if !c.at_end() {
        return Err(format());
    }
    let days = date.signed_duration_since(epoch().date()).num_days();
    let of_day =
        hour * MICROS_PER_HOUR + minute * MICROS_PER_MINUTE + second * MICROS_PER_SECOND + micros
            - if tz { offset } else { 0 };
    days.checked_mul(MICROS_PER_DAY)
        .and_then(|d| d.checked_add(of_day))
        .ok_or_else(range)
}

/// An optional zone after the time: `Z`, `±HH[[:]MM]` or ` UTC` / ` GMT`,
/// as microseconds east of UTC; None for anything else.
fn parse_offset(c: &mut Cursor) -> Option<i64> {
    if c.at_end() {
        return Some(0);
    }
    if c.eat(b'Z') || c.eat(b'z') {
        return Some(0);
    }
    let sign = match c.peek() {
        Some(b'+') => 1,
        Some(b'-') => -1,
        Some(b' ') => {
            let rest = std::str::from_utf8(&c.s[c.i + 1..]).ok()?;
            if rest.eq_ignore_ascii_case("utc") || rest.eq_ignore_ascii_case("gmt") {
                c.i = c.s.len();
                return Some(0);
            }
            return None;
        }
        _ => return None,
    };
    c.i += 1;
    let hours = c.number(2)?;
    let minutes = if c.eat(b':') {
        c.number(2)?
    } else {
        c.number(2).unwrap_or(0)
    };
    Some(sign * (hours * MICROS_PER_HOUR + minutes * MICROS_PER_MINUTE))
}

/// An interval's text as DuckDB reads it: `<number> <unit>` pairs (signed,
/// maybe fractional, the space optional) and a `[-]HH:MM[:SS[.f]]` time,
/// `ago` at the end negating the whole. A fraction of a month goes to days
/// (30 a month) and one of a day to the time, as in DuckDB.
pub fn parse_interval(text: &str) -> std::result::Result<IntervalMonthDayNano, String> {
    let bad = || format!("invalid INTERVAL '{text}'");
    let mut acc = IntervalAcc::default();
    let mut words = text.split_whitespace().peekable();
    let mut any = false;
    while let Some(word) = words.next() {
        if word.eq_ignore_ascii_case("ago") && words.peek().is_none() && any {
            acc.negate();
            break;
        }
        if word.contains(':') {
            let (neg, hms) = match word.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, word.strip_prefix('+').unwrap_or(word)),
            };
            let parts: Vec<&str> = hms.split(':').collect();
            if parts.len() > 3 || parts.len() < 2 {
                return Err(bad());
            }
            let mut micros = 0f64;
            for (p, unit) in
                parts
                    .iter()
                    .zip([MICROS_PER_HOUR, MICROS_PER_MINUTE, MICROS_PER_SECOND])
            {
                let v: f64 = p.parse().map_err(|_| bad())?;
                micros += v * unit as f64;
            }
            acc.add(if neg { -micros } else { micros }, "microsecond")
                .ok_or_else(bad)?;
            any = true;
            continue;
        }
        // the number, and its unit in the same word or the next
        let split = word
            .find(|ch: char| !(ch.is_ascii_digit() || ch == '.' || ch == '-' || ch == '+'))
            .unwrap_or(word.len());
        let (num, unit) = word.split_at(split);
        let unit = if unit.is_empty() {
            words.next().ok_or_else(bad)?.to_string()
        } else {
            unit.to_string()
        };
        let n: f64 = num.parse().map_err(|_| bad())?;
        let unit = interval_unit(&unit)
            .ok_or_else(|| format!("unknown interval unit '{unit}' in INTERVAL '{text}'"))?;
        acc.add(n, unit).ok_or_else(bad)?;
        any = true;
    }
    if !any {
        return Err(bad());
    }
    acc.finish()
        .ok_or_else(|| format!("INTERVAL '{text}' is out of range"))
}

/// The canonical name of an interval unit (`hours`, `h`, `mins`, … ).
pub fn interval_unit(unit: &str) -> Option<&'static str> {
    Some(match unit.to_lowercase().as_str() {
        "millennium" | "millennia" | "millenniums" | "mil" | "mils" => "millennium",
        "century" | "centuries" | "c" | "cent" => "century",
        "decade" | "decades" | "dec" | "decs" => "decade",
        "year" | "years" | "y" | "yr" | "yrs" => "year",
        "quarter" | "quarters" => "quarter",
        "month" | "months" | "mon" | "mons" => "month",
        "week" | "weeks" | "w" => "week",
        "day" | "days" | "d" => "day",
        "hour" | "hours" | "h" | "hr" | "hrs" => "hour",
        "minute" | "minutes" | "m" | "min" | "mins" => "minute",
        "second" | "seconds" | "s" | "sec" | "secs" => "second",
        "millisecond" | "milliseconds" | "ms" | "msec" | "msecs" => "millisecond",
        "microsecond" | "microseconds" | "us" | "usec" | "usecs" => "microsecond",
        _ => return None,
    })
}

/// `n` of the canonical `unit` as an interval (None on overflow).
pub fn interval_of(n: i64, unit: &str) -> Option<IntervalMonthDayNano> {
    let months = |m: i64| Some(IntervalMonthDayNano::new(i32::try_from(m).ok()?, 0, 0));
    let days = |d: i64| Some(IntervalMonthDayNano::new(0, i32::try_from(d).ok()?, 0));
    let micros = |u: i64| Some(IntervalMonthDayNano::new(0, 0, u.checked_mul(1000)?));
    match unit {
        "millennium" => months(n.checked_mul(12_000)?),
        "century" => months(n.checked_mul(1200)?),
        "decade" => months(n.checked_mul(120)?),
        "year" => months(n.checked_mul(12)?),
        "quarter" => months(n.checked_mul(3)?),
        "month" => months(n),
        "week" => days(n.checked_mul(7)?),
        "day" => days(n),
        "hour" => micros(n.checked_mul(MICROS_PER_HOUR)?),
        "minute" => micros(n.checked_mul(MICROS_PER_MINUTE)?),
        "second" => micros(n.checked_mul(MICROS_PER_SECOND)?),
        "millisecond" => micros(n.checked_mul(1000)?),
        "microsecond" => micros(n),
        _ => None,
    }
}

/// Sums the fields of an interval being read, fractions carried down.
#[derive(Default)]
struct IntervalAcc {
    months: f64,
    days: f64,
    micros: f64,
}

impl IntervalAcc {
    fn add(&mut self, n: f64, unit: &str) -> Option<()> {
        let months_per = match unit {
            "millennium" => 12_000.0,
            "century" => 1200.0,
            "decade" => 120.0,
            "year" => 12.0,
            "quarter" => 3.0,
            "month" => 1.0,
            _ => 0.0,
        };
        if months_per > 0.0 {
            let m = n * months_per;
            self.months += m.trunc();
            self.days += m.fract() * 30.0;
            return Some(());
        }
        let days_per = match unit {
            "week" => 7.0,
            "day" => 1.0,
            _ => 0.0,
        };
        if days_per > 0.0 {
            let d = n * days_per;
            self.days += d.trunc();
            self.micros += d.fract() * MICROS_PER_DAY as f64;
            return Some(());
        }
        let per = match unit {
            "hour" => MICROS_PER_HOUR,
            "minute" => MICROS_PER_MINUTE,
            "second" => MICROS_PER_SECOND,
            "millisecond" => 1000,
            "microsecond" => 1,
            _ => return None,
        };
        self.micros += n * per as f64;
        Some(())
    }

    fn negate(&mut self) {
        self.months = -self.months;
        self.days = -self.days;
        self.micros = -self.micros;
    }

    fn finish(&self) -> Option<IntervalMonthDayNano> {
        // (a day's fraction left over from a fraction of a month)
        let days = self.days.trunc();
        let micros = self.micros + self.days.fract() * MICROS_PER_DAY as f64;
        let fits = |v: f64, lim: f64| v.is_finite() && v.abs() <= lim;
        if !fits(self.months, i32::MAX as f64)
            || !fits(days, i32::MAX as f64)
            || !fits(micros.round(), (i64::MAX / 1000) as f64)
        {
            return None;
        }
        Some(IntervalMonthDayNano::new(
            self.months as i32,
            days as i32,
            micros.round() as i64 * 1000,
        ))
    }
}

// ----------------------------------------------------------------- printing

/// `micros` as DuckDB prints a timestamp: `2024-01-02 03:04:05.123`, the
/// fraction without trailing zeros and left out when zero; `+00` after a
/// TIMESTAMP WITH TIME ZONE.
pub fn format_timestamp(micros: i64, tz: bool) -> String {
    let days = micros.div_euclid(MICROS_PER_DAY);
    let of_day = micros.rem_euclid(MICROS_PER_DAY);
    let date = i32::try_from(days)
        .ok()
        .and_then(|d| d.checked_add(719_163))
        .and_then(NaiveDate::from_num_days_from_ce_opt);
    let mut s = match date {
        Some(d) if d.year() >= 1 => format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day()),
        Some(d) => format!("{:04}-{:02}-{:02} (BC)", 1 - d.year(), d.month(), d.day()),
        None => return micros.to_string(),
    };
    s.push(' ');
    s.push_str(&format_time(of_day));
    if tz {
        s.push_str("+00");
    }
    s
}

/// A time of `micros` (≥ 0): `HH:MM:SS[.fraction]`, hours at least two
/// digits.
fn format_time(micros: i64) -> String {
    let (h, rest) = (micros / MICROS_PER_HOUR, micros % MICROS_PER_HOUR);
    let (m, rest) = (rest / MICROS_PER_MINUTE, rest % MICROS_PER_MINUTE);
    let (sec, frac) = (rest / MICROS_PER_SECOND, rest % MICROS_PER_SECOND);
    let mut s = format!("{h:02}:{m:02}:{sec:02}");
    if frac != 0 {
        let f = format!("{frac:06}");
        s.push('.');
        s.push_str(f.trim_end_matches('0'));
    }
    s
}

/// An interval as DuckDB prints it: `1 year 2 months 3 days 04:05:06.789`,
/// each field signed, zero fields left out, `00:00:00` for nothing.
pub fn format_interval(v: IntervalMonthDayNano) -> String {
    let mut parts = Vec::new();
    let (years, months) = (v.months / 12, v.months % 12);
    for (n, unit) in [(years, "year"), (months, "month"), (v.days, "day")] {
        if n != 0 {
            let plural = if n == 1 || n == -1 { "" } else { "s" };
            parts.push(format!("{n} {unit}{plural}"));
        }
    }
    let micros = v.nanoseconds / 1000;
    if micros != 0 {
        let sign = if micros < 0 { "-" } else { "" };
        // (i64::MIN has no positive: print its magnitude as u64)
        let time = match micros.checked_abs() {
            Some(m) => format_time(m),
            None => (micros as i128).abs().to_string(),
        };
        parts.push(format!("{sign}{time}"));
    }
    if parts.is_empty() {
        "00:00:00".into()
    } else {
        parts.join(" ")
    }
}

// -------------------------------------------------------------------- casts

fn timestamps(a: &ArrayRef) -> Result<&TimestampMicrosecondArray> {
    a.as_primitive_opt::<TimestampMicrosecondType>()
        .ok_or_else(|| {
            QuarryError::exec(format!(
                "internal error: expected TIMESTAMP, got {}",
                a.data_type()
            ))
        })
}

fn intervals(a: &ArrayRef) -> Result<&IntervalMonthDayNanoArray> {
    a.as_primitive_opt::<IntervalMonthDayNanoType>()
        .ok_or_else(|| {
            QuarryError::exec(format!(
                "internal error: expected INTERVAL, got {}",
                a.data_type()
            ))
        })
}

fn is_text(t: &DataType) -> bool {
    crate::plan::types::is_string(t)
}

/// The casts this module does (so that they behave as DuckDB's), or None
/// for arrow's. `safe`: a value that does not convert becomes NULL
/// (TRY_CAST) instead of an error.
pub fn cast(a: &ArrayRef, to: &DataType, safe: bool) -> Option<Result<ArrayRef>> {
    let from = a.data_type();
    let us = |t: &DataType| matches!(t, DataType::Timestamp(TimeUnit::Microsecond, _));
    Some(match (from, to) {
        (f, t) if is_text(f) && us(t) => {
            let tz = has_zone(t);
            text_to(a, safe, |s| {
                parse_timestamp(s, tz).map_err(|e| {
                    format!(
                        "invalid {} '{s}': {e}",
                        crate::plan::types::sql_type_name(to)
                    )
                })
            })
            .map(|v: TimestampMicrosecondArray| {
                Arc::new(v.with_timezone_opt(timezone(to))) as ArrayRef
            })
        }
        (f, DataType::Interval(IntervalUnit::MonthDayNano)) if is_text(f) => {
            text_to(a, safe, parse_interval)
                .map(|v: IntervalMonthDayNanoArray| Arc::new(v) as ArrayRef)
        }
        (f, t) if us(f) && is_text(t) => {
            let tz = has_zone(f);
            let out: StringArray = match timestamps(a) {
                Ok(ts) => ts
                    .iter()
                    .map(|v| v.map(|v| format_timestamp(v, tz)))
                    .collect(),
                Err(e) => return Some(Err(e)),
            };
            text_as(out, t)
        }
        (DataType::Interval(IntervalUnit::MonthDayNano), t) if is_text(t) => {
            let out: StringArray = match intervals(a) {
                Ok(iv) => iv.iter().map(|v| v.map(format_interval)).collect(),
                Err(e) => return Some(Err(e)),
            };
            text_as(out, t)
        }
        (f, t) if us(f) && us(t) => {
            // the same instant: with the session's zone UTC, the same count
            timestamps(a).map(|ts| Arc::new(ts.clone().with_timezone_opt(timezone(t))) as ArrayRef)
        }
        (f, DataType::Date32) if us(f) => timestamps(a).map(|ts| {
            let out: Date32Array =
                ts.unary_opt(|v| i32::try_from(v.div_euclid(MICROS_PER_DAY)).ok());
            Arc::new(out) as ArrayRef
        }),
        (DataType::Date32, t) if us(t) => {
            let dates = a.as_primitive::<Date32Type>();
            let out: Result<TimestampMicrosecondArray> = dates
                .try_unary(|d| {
                    (d as i64).checked_mul(MICROS_PER_DAY).ok_or_else(|| {
                        arrow::error::ArrowError::ComputeError(
                            "the DATE is out of the TIMESTAMP range".into(),
                        )
                    })
                })
                .map_err(|e| QuarryError::exec(e.to_string()));
            out.map(|v| Arc::new(v.with_timezone_opt(timezone(t))) as ArrayRef)
        }
        _ => return None,
    })
}

fn timezone(t: &DataType) -> Option<Arc<str>> {
    match t {
        DataType::Timestamp(_, tz) => tz.clone(),
        _ => None,
    }
}

/// Each text of `a` read by `parse`: an error names the value, or (`safe`)
/// the value becomes NULL.
fn text_to<T, A>(
    a: &ArrayRef,
    safe: bool,
    parse: impl Fn(&str) -> std::result::Result<T, String>,
) -> Result<A>
where
    A: FromIterator<Option<T>>,
{
    let text = arrow::compute::cast(a, &DataType::Utf8)?;
    let text = text.as_string::<i32>();
    text.iter()
        .map(|v| match v {
            None => Ok(None),
            Some(s) => match parse(s) {
                Ok(x) => Ok(Some(x)),
                Err(_) if safe => Ok(None),
                Err(e) => Err(QuarryError::exec(e)),
            },
        })
        .collect()
}

fn text_as(out: StringArray, t: &DataType) -> Result<ArrayRef> {
    let out: ArrayRef = Arc::new(out);
    if *t == DataType::Utf8 {
        Ok(out)
    } else {
        Ok(arrow::compute::cast(&out, t)?)
    }
}

/// `batch` with its TIMESTAMP and INTERVAL columns as DuckDB's text, for
/// output (arrow's display differs: `T`, fixed fractions, `secs`).
pub fn displayable(batch: &RecordBatch) -> Result<RecordBatch> {
    let temporal = |t: &DataType| {
        matches!(
            t,
            DataType::Timestamp(_, _) | DataType::Interval(IntervalUnit::MonthDayNano)
        )
    };
    if !batch
        .schema()
        .fields()
        .iter()
        .any(|f| temporal(f.data_type()))
    {
        return Ok(batch.clone());
    }
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
        if temporal(f.data_type()) {
            let c = match c.data_type() {
                DataType::Timestamp(unit, tz) if *unit != TimeUnit::Microsecond => {
                    let t = DataType::Timestamp(TimeUnit::Microsecond, tz.clone());
                    arrow::compute::cast(c, &t)?
                }
                _ => c.clone(),
            };
            let text = cast(&c, &DataType::Utf8, false).unwrap_or_else(|| {
                Err(QuarryError::exec("internal error: no text for a column"))
            })?;
            fields.push(f.as_ref().clone().with_data_type(DataType::Utf8));
            columns.push(text);
        } else {
            fields.push(f.as_ref().clone());
            columns.push(c.clone());
        }
    }
    let schema = Arc::new(arrow::datatypes::Schema::new(fields));
    Ok(RecordBatch::try_new(schema, columns)?)
}

// --------------------------------------------------------------- arithmetic

/// `ts` moved by `iv` (months first, then days, then the time, as DuckDB
/// adds), None when it leaves the range.
pub fn add_interval(ts: i64, iv: IntervalMonthDayNano) -> Option<i64> {
    let mut t = ts;
    if iv.months != 0 {
        let dt = to_datetime(t)?;
        let months = chrono::Months::new(iv.months.unsigned_abs());
        let moved = if iv.months > 0 {
            dt.checked_add_months(months)?
        } else {
            dt.checked_sub_months(months)?
        };
        t = from_datetime(moved)?;
    }
    t = t.checked_add((iv.days as i64).checked_mul(MICROS_PER_DAY)?)?;
    t.checked_add(iv.nanoseconds / 1000)
}

fn negate(iv: IntervalMonthDayNano) -> Option<IntervalMonthDayNano> {
    Some(IntervalMonthDayNano::new(
        iv.months.checked_neg()?,
        iv.days.checked_neg()?,
        iv.nanoseconds.checked_neg()?,
    ))
}

/// `a − b` as DuckDB's interval: whole days and the rest as time.
pub fn difference(a: i64, b: i64) -> Option<IntervalMonthDayNano> {
    let d = a.checked_sub(b)?;
    let days = i32::try_from(d / MICROS_PER_DAY).ok()?;
    Some(IntervalMonthDayNano::new(
        0,
        days,
        (d % MICROS_PER_DAY) * 1000,
    ))
}

/// `iv × f`, each field multiplied and its fraction spilled into the next
/// smaller one (a month is 30 days), as in DuckDB.
fn scale(iv: IntervalMonthDayNano, f: f64) -> Option<IntervalMonthDayNano> {
    let months = iv.months as f64 * f;
    let days = iv.days as f64 * f + months.fract() * 30.0;
    let micros = (iv.nanoseconds / 1000) as f64 * f + days.fract() * MICROS_PER_DAY as f64;
    let fits = |v: f64, lim: f64| v.is_finite() && v.abs() <= lim;
    if !fits(months.trunc(), i32::MAX as f64)
        || !fits(days.trunc(), i32::MAX as f64)
        || !fits(micros.round(), (i64::MAX / 1000) as f64)
    {
        return None;
    }
    Some(IntervalMonthDayNano::new(
        months.trunc() as i32,
        days.trunc() as i32,
        micros.round() as i64 * 1000,
    ))
}

/// `iv × n` for an integer `n`, exactly.
fn multiply(iv: IntervalMonthDayNano, n: i64) -> Option<IntervalMonthDayNano> {
    Some(IntervalMonthDayNano::new(
        i32::try_from((iv.months as i64).checked_mul(n)?).ok()?,
        i32::try_from((iv.days as i64).checked_mul(n)?).ok()?,
        iv.nanoseconds.checked_mul(n)?,
    ))
}

/// An interval as one number of microseconds (a month 30 days), to order
/// intervals as DuckDB does (`INTERVAL 30 DAY = INTERVAL 1 MONTH`).
pub fn normalized(iv: IntervalMonthDayNano) -> i128 {
    (iv.months as i128 * 30 + iv.days as i128) * MICROS_PER_DAY as i128
        + (iv.nanoseconds / 1000) as i128
}

/// The one spelling of all the intervals equal to `iv` (as `normalized`
/// has them equal): whole months, then the whole days under a month, then
/// the time under a day, each with the sign of the whole (`720 hours` and
/// `30 days` are `1 month`, `1 month -1 day` is `29 days`, `-25 hours` is
/// `-1 day -01:00:00`). Months (or days) past their field's range stay
/// in the field below, so that the value is kept.
pub fn canonical(iv: IntervalMonthDayNano) -> IntervalMonthDayNano {
    let day = MICROS_PER_DAY as i128;
    let month = 30 * day;
    let (i32_min, i32_max) = (i128::from(i32::MIN), i128::from(i32::MAX));
    let total = normalized(iv);
    let months = (total / month).clamp(i32_min, i32_max);
    let rest = total - months * month;
    let days = (rest / day).clamp(i32_min, i32_max);
    let micros = rest - days * day;
    // (in range: past the clamps, `micros` is at most the time part `iv`
    // had; this clamp only guards against a mistake in that reasoning)
    let nanos = (micros * 1000).clamp(i64::MIN.into(), i64::MAX.into());
    IntervalMonthDayNano::new(months as i32, days as i32, nanos as i64)
}

/// What to hash and test for equality by in place of `a`, wherever keys
/// are (GROUP BY, DISTINCT, set operations, joins, exchanges): an INTERVAL
/// array with each value `canonical`, so that intervals `=` calls equal
/// are one key (`1 month` and `30 days`, as in DuckDB); any other array
/// itself.
pub fn equality_key(a: &ArrayRef) -> Result<ArrayRef> {
    if *a.data_type() != interval_type() {
        return Ok(a.clone());
    }
    let out: IntervalMonthDayNanoArray = intervals(a)?.unary(canonical);
    Ok(Arc::new(out))
}

/// `equality_key` of each of `keys`; `keys` themselves when none is an
/// INTERVAL (one look at the types, no copy).
pub fn equality_keys(keys: &[ArrayRef]) -> Result<Cow<'_, [ArrayRef]>> {
    if !keys.iter().any(|k| *k.data_type() == interval_type()) {
        return Ok(Cow::Borrowed(keys));
    }
    Ok(Cow::Owned(
        keys.iter().map(equality_key).collect::<Result<_>>()?,
    ))
}

/// What to sort by, and to find peers and extremes by, in place of `a`:
/// an INTERVAL array as its normalized values (DECIMAL(38, 0)
/// microseconds), so that intervals order as they compare (`25 hours`
/// after `1 day 00:30:00`, `1 month` beside `30 days`, as in DuckDB; the
/// fields one by one would put every month after every day); any other
/// array itself.
pub fn order_key(a: &ArrayRef) -> Result<ArrayRef> {
    if *a.data_type() != interval_type() {
        return Ok(a.clone());
    }
    let out: Decimal128Array = intervals(a)?.iter().map(|v| v.map(normalized)).collect();
    Ok(Arc::new(out.with_precision_and_scale(38, 0)?))
}

fn out_of_range(what: &str) -> QuarryError {
    QuarryError::exec(format!("{what} is out of range"))
}

/// `l op r` where an operand is a TIMESTAMP or an INTERVAL (as the binder
/// coerced them), or None for the operators arrow's kernels do right.
/// Both arrays have one length.
pub fn binary(op: BinaryOp, l: &ArrayRef, r: &ArrayRef) -> Option<Result<ArrayRef>> {
    use DataType::*;
    let mdn = Interval(IntervalUnit::MonthDayNano);
    let (lt, rt) = (l.data_type(), r.data_type());
    let ts = |t: &DataType| matches!(t, Timestamp(TimeUnit::Microsecond, _));
    Some(match op {
        BinaryOp::Plus | BinaryOp::Minus if ts(lt) && *rt == mdn => (|| {
            let (a, b) = (timestamps(l)?, intervals(r)?);
            let out: Option<TimestampMicrosecondArray> = a
                .iter()
                .zip(b.iter())
                .map(|(t, iv)| match (t, iv) {
                    (Some(t), Some(iv)) => {
                        let iv = if op == BinaryOp::Minus {
                            negate(iv)?
                        } else {
                            iv
                        };
                        add_interval(t, iv).map(Some)
                    }
                    _ => Some(None),
                })
                .collect();
            let out = out.ok_or_else(|| out_of_range("the TIMESTAMP"))?;
            Ok(Arc::new(out.with_timezone_opt(timezone(lt))) as ArrayRef)
        })(),
        BinaryOp::Minus if ts(lt) && ts(rt) => (|| {
            let (a, b) = (timestamps(l)?, timestamps(r)?);
            let out: Option<IntervalMonthDayNanoArray> = a
                .iter()
                .zip(b.iter())
                .map(|(x, y)| match (x, y) {
                    (Some(x), Some(y)) => difference(x, y).map(Some),
                    _ => Some(None),
                })
                .collect();
            Ok(Arc::new(out.ok_or_else(|| out_of_range("the INTERVAL"))?) as ArrayRef)
        })(),
        BinaryOp::Plus | BinaryOp::Minus if *lt == mdn && *rt == mdn => (|| {
            let (a, b) = (intervals(l)?, intervals(r)?);
            let out: Option<IntervalMonthDayNanoArray> = a
                .iter()
                .zip(b.iter())
                .map(|(x, y)| match (x, y) {
                    (Some(x), Some(y)) => {
                        let y = if op == BinaryOp::Minus { negate(y)? } else { y };
                        Some(Some(IntervalMonthDayNano::new(
                            x.months.checked_add(y.months)?,
                            x.days.checked_add(y.days)?,
                            x.nanoseconds.checked_add(y.nanoseconds)?,
                        )))
                    }
                    _ => Some(None),
                })
                .collect();
            Ok(Arc::new(out.ok_or_else(|| out_of_range("the INTERVAL"))?) as ArrayRef)
        })(),
        BinaryOp::Multiply | BinaryOp::Divide if *lt == mdn && rt.is_numeric() => {
            scale_array(op, l, r)
        }
        BinaryOp::Multiply if *rt == mdn && lt.is_numeric() => scale_array(op, r, l),
        _ if op.is_comparison() && *lt == mdn && *rt == mdn => (|| {
            let key = |a: &ArrayRef| -> Result<ArrayRef> {
                let out: Decimal128Array =
                    intervals(a)?.iter().map(|v| v.map(normalized)).collect();
                Ok(Arc::new(out))
            };
            let (a, b) = (key(l)?, key(r)?);
            let out: BooleanArray = match op {
                BinaryOp::Eq => arrow::compute::kernels::cmp::eq(&a, &b)?,
                BinaryOp::NotEq => arrow::compute::kernels::cmp::neq(&a, &b)?,
                BinaryOp::Lt => arrow::compute::kernels::cmp::lt(&a, &b)?,
                BinaryOp::LtEq => arrow::compute::kernels::cmp::lt_eq(&a, &b)?,
                BinaryOp::Gt => arrow::compute::kernels::cmp::gt(&a, &b)?,
                _ => arrow::compute::kernels::cmp::gt_eq(&a, &b)?,
            };
            Ok(Arc::new(out) as ArrayRef)
        })(),
        _ => return None,
    })
}

/// An interval array times (or divided by) a number array.
fn scale_array(op: BinaryOp, iv: &ArrayRef, n: &ArrayRef) -> Result<ArrayRef> {
    let ivs = intervals(iv)?;
    let out: Option<IntervalMonthDayNanoArray> =
        if n.data_type().is_integer() && op == BinaryOp::Multiply {
            let n = arrow::compute::cast(n, &DataType::Int64)?;
            ivs.iter()
                .zip(n.as_primitive::<arrow::datatypes::Int64Type>().iter())
                .map(|(v, n)| match (v, n) {
                    (Some(v), Some(n)) => multiply(v, n).map(Some),
                    _ => Some(None),
                })
                .collect()
        } else {
            let f = arrow::compute::cast(n, &DataType::Float64)?;
            let f = f.as_primitive::<arrow::datatypes::Float64Type>();
            if op == BinaryOp::Divide && f.iter().any(|f| f == Some(0.0)) {
                return Err(QuarryError::exec("division by zero"));
            }
            ivs.iter()
                .zip(f.iter())
                .map(|(v, f)| match (v, f) {
                    (Some(v), Some(f)) => {
                        scale(v, if op == BinaryOp::Divide { 1.0 / f } else { f }).map(Some)
                    }
                    _ => Some(None),
                })
                .collect()
        };
    Ok(Arc::new(out.ok_or_else(|| out_of_range("the INTERVAL"))?))
}

/// A timestamp array of any unit as microseconds of type `to` (as DuckDB
/// reads files: nanoseconds rounded to the nearest microsecond), an error
/// where seconds or milliseconds overflow.
pub fn to_micros(a: &ArrayRef, to: &DataType) -> Result<ArrayRef> {
    use arrow::datatypes::{
        TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
    };
    let overflow = || arrow::error::ArrowError::ComputeError("a timestamp is out of range".into());
    let out: TimestampMicrosecondArray = match a.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => a
            .as_primitive::<TimestampSecondType>()
            .try_unary(|v| v.checked_mul(MICROS_PER_SECOND).ok_or_else(overflow))?,
        DataType::Timestamp(TimeUnit::Millisecond, _) => a
            .as_primitive::<TimestampMillisecondType>()
            .try_unary(|v| v.checked_mul(1000).ok_or_else(overflow))?,
        DataType::Timestamp(TimeUnit::Nanosecond, _) => a
            .as_primitive::<TimestampNanosecondType>()
            .unary(|v| v.div_euclid(1000) + i64::from(v.rem_euclid(1000) >= 500)),
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            a.as_primitive::<TimestampMicrosecondType>().clone()
        }
        other => {
            return Err(QuarryError::exec(format!(
                "internal error: {other} is no timestamp"
            )))
        }
    };
    Ok(Arc::new(out.with_timezone_opt(timezone(to))))
}

/// `values` as a TIMESTAMP array, WITH TIME ZONE when `tz`.
pub fn timestamp_array(values: PrimitiveArray<TimestampMicrosecondType>, tz: bool) -> ArrayRef {
    Arc::new(values.with_timezone_opt(tz.then_some(UTC)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> i64 {
        parse_timestamp(s, false).unwrap()
    }

    #[test]
    fn parses_as_duckdb_does() {
        assert_eq!(ts("1970-01-01"), 0);
        assert_eq!(ts("1970-01-02 00:00:01.5"), MICROS_PER_DAY + 1_500_000);
        assert_eq!(ts("2024-1-2 3:4:5"), ts("2024-01-02 03:04:05"));
        assert_eq!(ts("2024-01-02T03:04:05Z"), ts("2024-01-02 03:04:05"));
        assert_eq!(ts("2024-01-02 03:04:05 UTC"), ts("2024-01-02 03:04:05"));
        assert_eq!(ts("2024-01-02 24:00:00"), ts("2024-01-03"));
        // nanoseconds are cut to microseconds
        assert_eq!(
            ts("2024-01-02 03:04:05.123456789"),
            ts("2024-01-02 03:04:05.123456")
        );
        // a plain TIMESTAMP ignores an offset; WITH TIME ZONE moves to UTC
        assert_eq!(ts("2024-01-01 10:00:00+02"), ts("2024-01-01 10:00:00"));
        assert_eq!(
            parse_timestamp("2024-01-01 10:00:00+02:30", true).unwrap(),
            ts("2024-01-01 07:30:00")
        );
        assert_eq!(ts("1969-12-31 23:59:59"), -MICROS_PER_SECOND);
    }

    #[test]
    fn bad_timestamps_say_why() {
        for bad in [
            "2024-13-01",
            "2024-02-30",
            "2024-01-01 25:00",
            "2024-01-01 10:60",
        ] {
            assert_eq!(
                parse_timestamp(bad, false).unwrap_err(),
                "no such date or time",
                "{bad}"
            );
        }
        for bad in [
            "",
            " 2024-01-02",
            "2024-01-02x",
            "2024-01-02 03",
            "x",
            "2024-01-02 03:04:05.",
        ] {
            assert!(
                parse_timestamp(bad, false)
                    .unwrap_err()
                    .starts_with("expected"),
                "{bad}"
            );
        }
    }

    #[test]
    fn prints_as_duckdb_does() {
        assert_eq!(
            format_timestamp(ts("2024-01-02 03:04:05.123"), false),
            "2024-01-02 03:04:05.123"
        );
        assert_eq!(
            format_timestamp(ts("2024-01-02 03:04:05.000120"), false),
            "2024-01-02 03:04:05.00012"
        );
        assert_eq!(
            format_timestamp(ts("2024-01-02"), false),
            "2024-01-02 00:00:00"
        );
        assert_eq!(
            format_timestamp(ts("0044-03-15 12:00"), true),
            "0044-03-15 12:00:00+00"
        );
        assert_eq!(format_timestamp(-1, false), "1969-12-31 23:59:59.999999");
    }

    #[test]
    fn intervals_read_and_print_as_duckdb() {
        let p = |s: &str| format_interval(parse_interval(s).unwrap());
        assert_eq!(p("1 day 2 hours"), "1 day 02:00:00");
        assert_eq!(p("90 minutes"), "01:30:00");
        assert_eq!(p("1.5 hours"), "01:30:00");
        assert_eq!(p("-1 day 3 hours"), "-1 day 03:00:00");
        assert_eq!(
            p("1 year 2 months 3 days 04:05:06.789"),
            "1 year 2 months 3 days 04:05:06.789"
        );
        assert_eq!(p("2 weeks"), "14 days");
        assert_eq!(p("1 decade"), "10 years");
        assert_eq!(p("1h"), "01:00:00");
        assert_eq!(p("1 day ago"), "-1 day");
        assert_eq!(p("1:30"), "01:30:00");
        assert_eq!(p("0 seconds"), "00:00:00");
        assert_eq!(p("1 microsecond"), "00:00:00.000001");
        assert_eq!(p("100 hours"), "100:00:00");
        assert_eq!(p("-14 months"), "-1 year -2 months");
        assert!(parse_interval("1 fortnight")
            .unwrap_err()
            .contains("fortnight"));
        assert!(parse_interval("").is_err());
    }

    #[test]
    fn equal_intervals_have_one_canonical_spelling() {
        let c = |s: &str| canonical(parse_interval(s).unwrap());
        let spelled = |s: &str| format_interval(c(s));
        // the spellings DuckDB makes one group, and those it keeps apart
        for same in [
            ["1 month", "30 days", "720 hours"],
            ["1 day", "24 hours", "1440 minutes"],
            ["-1 month", "-30 days", "-720 hours"],
            ["1 month -1 day", "29 days", "696 hours"],
            ["2 months -30 days", "1 month", "30 days"],
            ["1 day -1 hour", "23 hours", "-1 day 47 hours"],
            ["1 month 1 day", "31 days", "744 hours"],
            ["0 seconds", "1 month -30 days", "1 day -24 hours"],
        ] {
            assert_eq!(c(same[0]), c(same[1]), "{same:?}");
            assert_eq!(c(same[0]), c(same[2]), "{same:?}");
        }
        for apart in [
            ["1 day", "25 hours"],
            ["1 month", "31 days"],
            ["1 day", "24 hours 1 microsecond"],
        ] {
            assert_ne!(c(apart[0]), c(apart[1]), "{apart:?}");
        }
        // every field with the sign of the whole
        assert_eq!(spelled("720 hours"), "1 month");
        assert_eq!(spelled("1 month -1 day"), "29 days");
        assert_eq!(spelled("-25 hours"), "-1 day -01:00:00");
        assert_eq!(
            spelled("400 days 25:00:00.5"),
            "1 year 1 month 11 days 01:00:00.5"
        );
        // at the ends of the fields: no overflow, and still as long
        for iv in [
            IntervalMonthDayNano::new(i32::MAX, i32::MAX, i64::MAX),
            IntervalMonthDayNano::new(i32::MIN, i32::MIN, i64::MIN),
            IntervalMonthDayNano::new(i32::MAX, i32::MIN, i64::MAX),
            IntervalMonthDayNano::new(i32::MIN, i32::MAX, i64::MIN),
            IntervalMonthDayNano::new(0, i32::MAX, i64::MAX),
            IntervalMonthDayNano::new(i32::MAX, 0, i64::MIN),
        ] {
            assert_eq!(normalized(canonical(iv)), normalized(iv), "{iv:?}");
            assert_eq!(canonical(canonical(iv)), canonical(iv), "{iv:?}");
        }
    }

    #[test]
    fn equality_keys_touch_only_intervals() {
        let iv = |s: &str| Some(parse_interval(s).unwrap());
        let ivs: ArrayRef = Arc::new(IntervalMonthDayNanoArray::from(vec![
            iv("30 days"),
            None,
            iv("24 hours"),
        ]));
        let ints: ArrayRef = Arc::new(arrow::array::Int64Array::from(vec![1, 2, 3]));
        let keys = [ints.clone()];
        assert!(matches!(equality_keys(&keys).unwrap(), Cow::Borrowed(_)));
        let both = [ints.clone(), ivs];
        let keys = equality_keys(&both).unwrap();
        assert!(Arc::ptr_eq(&keys[0], &ints));
        let want: ArrayRef = Arc::new(IntervalMonthDayNanoArray::from(vec![
            iv("1 month"),
            None,
            iv("1 day"),
        ]));
        assert_eq!(keys[1].as_ref(), want.as_ref());
    }

    #[test]
    fn arithmetic_as_duckdb() {
        let iv = |s: &str| parse_interval(s).unwrap();
        assert_eq!(
            add_interval(ts("2024-01-31 10:00"), iv("1 month")),
            Some(ts("2024-02-29 10:00"))
        );
        assert_eq!(
            format_interval(difference(ts("2024-01-03 05:00"), ts("2024-01-01")).unwrap()),
            "2 days 05:00:00"
        );
        assert_eq!(
            format_interval(difference(ts("2024-01-01"), ts("2024-03-03 05:00")).unwrap()),
            "-62 days -05:00:00"
        );
        assert_eq!(
            format_interval(scale(iv("1 day"), 1.5).unwrap()),
            "1 day 12:00:00"
        );
        assert_eq!(add_interval(i64::MAX - 1, iv("1 day")), None);
        assert_eq!(multiply(iv("2 days"), 1 << 40), None);
    }
}
