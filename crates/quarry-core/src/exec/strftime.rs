//! strftime / strptime formats as DuckDB reads them: `%Y-%m-%d %H:%M:%S`
//! and the other `%` codes of C's strftime that DuckDB knows, with `%f`
//! microseconds, `%g` milliseconds and `%n` nanoseconds. A format is
//! compiled once (an unknown code is an error then, with the format named)
//! and applied to every row.

use chrono::NaiveDate;

use super::timestamp::{from_datetime, to_datetime};

#[derive(Debug, Clone, PartialEq)]
enum Item {
    Literal(String),
    /// A code chrono prints as DuckDB does (`%Y`, `%-d`, `%a`, …).
    Chrono(String),
    Micros,
    Millis,
    Nanos,
    /// `%z`: the offset, `+00` (values are UTC)
    Offset,
    /// `%Z`: the zone's name, empty for a TIMESTAMP
    ZoneName,
}

/// A compiled format.
#[derive(Debug, Clone)]
pub struct Format {
    text: String,
    items: Vec<Item>,
}

/// The codes chrono prints as DuckDB; `-` (no padding) is allowed on the
/// numeric ones.
const CHRONO_CODES: &str = "aAwudbhBmyYHIpMSjUWVG";
const UNPADDED: &str = "dmyHIMSj";

impl Format {
    pub fn compile(text: &str) -> Result<Format, String> {
        let mut items = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars().peekable();
        let unknown = |code: &str| format!("unknown format code %{code} in '{text}'");
        while let Some(c) = chars.next() {
            if c != '%' {
                literal.push(c);
                continue;
            }
            let mut code = match chars.next() {
                Some(c) => c.to_string(),
                None => return Err(format!("the format '{text}' ends with a lone %")),
            };
            if code == "-" {
                match chars.next() {
                    Some(c) if UNPADDED.contains(c) => code.push(c),
                    Some(c) => return Err(unknown(&format!("-{c}"))),
                    None => return Err(format!("the format '{text}' ends with %-")),
                }
            }
            let item = match code.as_str() {
                "%" => {
                    literal.push('%');
                    continue;
                }
                "f" => Item::Micros,
                "g" => Item::Millis,
                "n" => Item::Nanos,
                "z" => Item::Offset,
                "Z" => Item::ZoneName,
                "c" => Item::Chrono("%Y-%m-%d %H:%M:%S".into()),
                "x" => Item::Chrono("%Y-%m-%d".into()),
                "X" => Item::Chrono("%H:%M:%S".into()),
                c if c.len() == 1 && CHRONO_CODES.contains(c) => Item::Chrono(format!("%{c}")),
                c if c.starts_with('-') => Item::Chrono(format!("%{c}")),
                other => return Err(unknown(other)),
            };
            if !literal.is_empty() {
                items.push(Item::Literal(std::mem::take(&mut literal)));
            }
            items.push(item);
        }
        if !literal.is_empty() {
            items.push(Item::Literal(literal));
        }
        Ok(Format {
            text: text.to_string(),
            items,
        })
    }

    /// The timestamp `micros` printed; `tz` for a TIMESTAMP WITH TIME ZONE.
    pub fn print(&self, micros: i64, tz: bool) -> Option<String> {
        let dt = to_datetime(micros)?;
        let mut out = String::new();
        let frac = micros.rem_euclid(1_000_000);
        for item in &self.items {
            match item {
                Item::Literal(s) => out.push_str(s),
                Item::Chrono(code) => out.push_str(&dt.format(code).to_string()),
                Item::Micros => out.push_str(&format!("{frac:06}")),
                Item::Millis => out.push_str(&format!("{:03}", frac / 1000)),
                Item::Nanos => out.push_str(&format!("{:09}", frac * 1000)),
                Item::Offset => out.push_str("+00"),
                Item::ZoneName => {
                    if tz {
                        out.push_str("UTC")
                    }
                }
            }
        }
        Some(out)
    }

    /// Whether parsing with this format can use it (`%z`, `%Z`, week
    /// numbers and week days cannot make a timestamp here).
    pub fn check_parse(&self) -> Result<(), String> {
        for item in &self.items {
            let ok = match item {
                Item::Offset | Item::ZoneName => false,
                Item::Chrono(code) => {
                    !matches!(code.as_str(), "%U" | "%W" | "%V" | "%G" | "%u" | "%w")
                }
                _ => true,
            };
            if !ok {
                return Err(format!(
                    "strptime() does not support the codes %z, %Z, %U, %W, %V, %G, %u, %w (format '{}')",
                    self.text
                ));
            }
        }
        Ok(())
    }

    /// `s` read by the format as a timestamp's microseconds; the error
    /// says where it failed.
    pub fn parse(&self, s: &str) -> Result<i64, String> {
        let fail = |why: &str| {
            format!(
                "could not parse '{s}' with the format '{}': {why}",
                self.text
            )
        };
        let mut p = Parser { s, i: 0 };
        let (mut year, mut month, mut day) = (1900i64, 1i64, 1i64);
        let mut day_of_year: Option<i64> = None;
        let (mut hour, mut minute, mut second, mut micros) = (0i64, 0i64, 0i64, 0i64);
        let mut pm: Option<bool> = None;
        for item in &self.items {
            match item {
                Item::Literal(lit) => {
                    for c in lit.chars() {
                        if c.is_whitespace() {
                            p.skip_space();
                        } else if !p.eat(c) {
                            return Err(fail(&format!("expected '{c}' at position {}", p.i + 1)));
                        }
                    }
                }
                Item::Micros => {
                    micros = p.fraction(6).ok_or_else(|| fail("expected microseconds"))?
                }
                Item::Millis => {
                    micros = p.fraction(3).ok_or_else(|| fail("expected milliseconds"))?
                }
                Item::Nanos => {
                    micros = p.fraction(9).ok_or_else(|| fail("expected nanoseconds"))?
                }
                Item::Offset | Item::ZoneName => return Err(fail("time zones are not supported")),
                Item::Chrono(code) => {
                    let code = code.trim_start_matches('%').trim_start_matches('-');
                    let number = |p: &mut Parser, max: usize, what: &str| {
                        p.number(max).ok_or_else(|| {
                            fail(&format!("expected {what} at position {}", p.i + 1))
                        })
                    };
                    match code {
                        // at most 4 digits, no sign, as DuckDB reads a
                        // year: '19960503' is 1996-05-03 by '%Y%m%d'
                        "Y" => year = number(&mut p, 4, "a year")?,
                        "y" => {
                            let y = number(&mut p, 2, "a year")?;
                            year = if y < 69 { 2000 + y } else { 1900 + y };
                        }
                        "m" => month = number(&mut p, 2, "a month")?,
                        "d" => day = number(&mut p, 2, "a day")?,
                        "j" => day_of_year = Some(number(&mut p, 3, "a day of the year")?),
                        "H" | "I" => hour = number(&mut p, 2, "an hour")?,
                        "M" => minute = number(&mut p, 2, "a minute")?,
                        "S" => second = number(&mut p, 2, "a second")?,
                        "p" => {
                            pm = Some(if p.eat_word("PM") {
                                true
                            } else if p.eat_word("AM") {
                                false
                            } else {
                                return Err(fail("expected AM or PM"));
                            })
                        }
                        "b" | "h" | "B" => {
                            month = p
                                .name(&MONTHS, code == "B")
                                .ok_or_else(|| fail("expected a month name"))?
                                as i64
                                + 1
                        }
                        "a" | "A" => {
                            p.name(&DAYS, code == "A")
                                .ok_or_else(|| fail("expected a day name"))?;
                        }
                        other => return Err(fail(&format!("%{other} is not supported"))),
                    }
                }
            }
        }
        if p.i < s.len() {
            return Err(fail("trailing characters"));
        }
        if let Some(pm) = pm {
            if !(1..=12).contains(&hour) {
                return Err(fail("the hour of a 12-hour clock must be 1 to 12"));
            }
            hour = hour % 12 + if pm { 12 } else { 0 };
        }
        let date = match day_of_year {
            Some(doy) => NaiveDate::from_yo_opt(year as i32, doy as u32),
            None => NaiveDate::from_ymd_opt(year as i32, month as u32, day as u32),
        }
        .ok_or_else(|| fail("no such date"))?;
        let dt = date
            .and_hms_micro_opt(hour as u32, minute as u32, second as u32, micros as u32)
            .ok_or_else(|| fail("no such time"))?;
        from_datetime(dt).ok_or_else(|| fail("out of the TIMESTAMP range"))
    }
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

struct Parser<'a> {
    s: &'a str,
    i: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.s[self.i..]
    }

    fn eat(&mut self, c: char) -> bool {
        if self.rest().starts_with(c) {
            self.i += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn skip_space(&mut self) {
        while self.rest().starts_with(char::is_whitespace) {
            self.i += self.rest().chars().next().map_or(1, char::len_utf8);
        }
    }

    fn number(&mut self, max: usize) -> Option<i64> {
        let digits = self
            .rest()
            .bytes()
            .take(max)
            .take_while(u8::is_ascii_digit)
            .count();
        if digits == 0 {
            return None;
        }
        let n = self.rest()[..digits].parse().ok()?;
        self.i += digits;
        Some(n)
    }

    /// Up to `max` digits of a fraction, as microseconds.
    fn fraction(&mut self, max: usize) -> Option<i64> {
        let start = self.i;
        let n = self.number(max)?;
        let digits = (self.i - start) as u32;
        Some(if digits <= 6 {
            n * 10i64.pow(6 - digits)
        } else {
            n / 10i64.pow(digits - 6)
        })
    }

    fn eat_word(&mut self, w: &str) -> bool {
        let rest = self.rest();
        if rest.len() >= w.len() && rest[..w.len()].eq_ignore_ascii_case(w) {
            self.i += w.len();
            true
        } else {
            false
        }
    }

    /// The index of a full (`full`) or three-letter name of `names`.
    fn name(&mut self, names: &[&str], full: bool) -> Option<usize> {
        names.iter().position(|n| {
            let w = if full { n } else { &n[..3] };
            self.eat_word(w)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::timestamp::{format_timestamp, parse_timestamp};

    fn ts(s: &str) -> i64 {
        parse_timestamp(s, false).unwrap()
    }

    #[test]
    fn prints_as_duckdb() {
        let f = Format::compile("%Y/%m/%d %H:%M:%S %j %a %A %b %B %p %I %y %f %%").unwrap();
        assert_eq!(
            f.print(ts("2024-05-06 07:08:09.5"), false).unwrap(),
            "2024/05/06 07:08:09 127 Mon Monday May May AM 07 24 500000 %"
        );
        let f = Format::compile("%-m/%-d/%-y %-H %-I %-M %-S %g %n %G %V %u %w %W %U %z %Z %c")
            .unwrap();
        assert_eq!(
            f.print(ts("2024-05-06 17:08:09.123456"), false).unwrap(),
            "5/6/24 17 5 8 9 123 123456000 2024 19 1 1 19 18 +00  2024-05-06 17:08:09"
        );
    }

    #[test]
    fn unknown_codes_are_errors() {
        assert_eq!(
            Format::compile("%Y %e").unwrap_err(),
            "unknown format code %e in '%Y %e'"
        );
        assert!(Format::compile("%").is_err());
        assert!(Format::compile("%-q").is_err());
    }

    #[test]
    fn parses_as_duckdb() {
        let p = |s: &str, f: &str| {
            Format::compile(f)
                .unwrap()
                .parse(s)
                .map(|v| format_timestamp(v, false))
        };
        assert_eq!(
            p("2024-05-06 07:08", "%Y-%m-%d %H:%M").unwrap(),
            "2024-05-06 07:08:00"
        );
        assert_eq!(
            p("06/05/2024 5:08 PM", "%d/%m/%Y %I:%M %p").unwrap(),
            "2024-05-06 17:08:00"
        );
        assert_eq!(
            p("2024-05-06 07:08:09.123", "%Y-%m-%d %H:%M:%S.%g").unwrap(),
            "2024-05-06 07:08:09.123"
        );
        assert_eq!(p("6 May 24", "%d %b %y").unwrap(), "2024-05-06 00:00:00");
        assert!(p("2024-05-06 07:08:09.1", "%Y-%m-%d %H:%M:%S")
            .unwrap_err()
            .contains("trailing"));
        assert!(p("x", "%Y").unwrap_err().contains("expected a year"));
        // a year is at most 4 digits: the next code reads what follows
        assert_eq!(
            p("19960503 003100", "%Y%m%d %H%M%S").unwrap(),
            "1996-05-03 00:31:00"
        );
        assert_eq!(p("1996011", "%Y%m%d").unwrap(), "1996-01-01 00:00:00");
        assert!(p("12345-01-01", "%Y-%m-%d").is_err());
        assert!(p("-1996-01-01", "%Y-%m-%d").is_err());
        assert!(p("2024-02-30", "%Y-%m-%d")
            .unwrap_err()
            .contains("no such date"));
    }
}
