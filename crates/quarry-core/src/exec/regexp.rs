//! The regular expression functions (DuckDB's): regexp_matches,
//! regexp_full_match, regexp_replace and regexp_extract, with the `regex`
//! crate. The binder checks the constant parts (options, group, a constant
//! pattern and replacement) with the same helpers, so that their errors
//! come at plan time with the SQL location.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, StringArray};
use arrow::datatypes::{DataType, Int64Type};
use regex::{Regex, RegexBuilder};

use crate::error::{QuarryError, Result};
use crate::plan::ScalarFunc;

/// The options string of a regex function: 'g' (every match, regexp_replace
/// only), 'i' (case-insensitive), 'c' (case-sensitive); the last of 'i' and
/// 'c' wins, as in DuckDB.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Options {
    pub global: bool,
    pub case_insensitive: bool,
}

pub(crate) fn options(func: ScalarFunc, s: &str) -> std::result::Result<Options, String> {
    let mut o = Options::default();
    for c in s.chars() {
        match c {
            'g' if func == ScalarFunc::RegexpReplace => o.global = true,
            'g' => {
                return Err(format!(
                    "option 'g' (global) is valid only for regexp_replace, not {}()",
                    func.name()
                ))
            }
            'i' => o.case_insensitive = true,
            'c' => o.case_insensitive = false,
            other => {
                return Err(format!(
                    "unknown option '{other}' of {}() (g, i and c are supported)",
                    func.name()
                ))
            }
        }
    }
    Ok(o)
}

/// `pattern` compiled; `full`: anchored at both ends (regexp_full_match:
/// the leftmost-first match of `a|abc` is `a`, so checking the match found
/// would not do).
pub(crate) fn compile(pattern: &str, o: Options, full: bool) -> std::result::Result<Regex, String> {
    let build = |source: &str| {
        RegexBuilder::new(source)
            .case_insensitive(o.case_insensitive)
            .build()
            .map_err(|e| format!("invalid regular expression '{pattern}': {e}"))
    };
    let re = build(pattern)?;
    if !full {
        return Ok(re);
    }
    // (checked alone first: `a)|(b` must not pass inside the wrapping group)
    build(&format!(r"\A(?:{pattern})\z"))
}

/// A replacement of regexp_replace: text and `\0` … `\9` (the match, a
/// group), `\\` for a backslash, as RE2's rewrite strings.
#[derive(Debug)]
pub(crate) struct Rewrite {
    pieces: Vec<Piece>,
    /// The highest group referred to (0 when none).
    max_group: usize,
}

#[derive(Debug)]
enum Piece {
    Text(String),
    Group(usize),
}

pub(crate) fn rewrite(rep: &str) -> std::result::Result<Rewrite, String> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut max_group = 0;
    let mut chars = rep.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            text.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => text.push('\\'),
            Some(d @ '0'..='9') => {
                let g = d as usize - '0' as usize;
                max_group = max_group.max(g);
                pieces.push(Piece::Text(std::mem::take(&mut text)));
                pieces.push(Piece::Group(g));
            }
            _ => {
                return Err(format!(
                    "invalid replacement '{rep}' of regexp_replace: '\\' must be followed by a \
                     digit or '\\'"
                ))
            }
        }
    }
    pieces.push(Piece::Text(text));
    Ok(Rewrite { pieces, max_group })
}

/// Whether `rw` refers only to groups that `re` has.
pub(crate) fn check_groups(re: &Regex, rw: &Rewrite) -> std::result::Result<(), String> {
    let groups = re.captures_len() - 1;
    if rw.max_group > groups {
        return Err(format!(
            "the replacement of regexp_replace refers to group \\{} but the pattern '{}' has {groups} group(s)",
            rw.max_group,
            re.as_str()
        ));
    }
    Ok(())
}

/// The greatest group regexp_extract takes (DuckDB's limit, RE2's rewrite).
pub(crate) const MAX_GROUP: i64 = 9;

/// The value made from the last key met, remade only when the key changes:
/// a constant pattern is compiled once per batch, a column of patterns once
/// per run of equal ones.
struct Memo<T>(Option<(String, T)>);

impl<T> Memo<T> {
    fn get(
        &mut self,
        key: &str,
        make: impl FnOnce(&str) -> std::result::Result<T, String>,
    ) -> Result<&T> {
        if !matches!(&self.0, Some((k, _)) if k == key) {
            self.0 = Some((key.to_string(), make(key).map_err(QuarryError::exec)?));
        }
        match &self.0 {
            Some((_, v)) => Ok(v),
            None => Err(QuarryError::exec("internal error: regex memo empty")),
        }
    }
}

/// `func` over `arrays` (all of one length): the text, the pattern, then
/// the replacement (regexp_replace) or group (regexp_extract), then the
/// options; the binder made the options and the group constants.
pub fn evaluate(func: ScalarFunc, arrays: &[ArrayRef]) -> Result<ArrayRef> {
    let text = |i: usize| -> Result<StringArray> {
        Ok(arrow::compute::cast(&arrays[i], &DataType::Utf8)?
            .as_string::<i32>()
            .clone())
    };
    let (s, pattern) = (text(0)?, text(1)?);
    let options_at = match func {
        ScalarFunc::RegexpReplace | ScalarFunc::RegexpExtract => 3,
        _ => 2,
    };
    let opts = match arrays.get(options_at) {
        Some(_) => {
            let a = text(options_at)?;
            let o = (0..a.len()).find(|&i| a.is_valid(i)).map(|i| a.value(i));
            options(func, o.unwrap_or("")).map_err(QuarryError::exec)?
        }
        None => Options::default(),
    };
    let mut regex = Memo(None);
    let n = s.len();
    let out: ArrayRef = match func {
        ScalarFunc::RegexpMatches | ScalarFunc::RegexpFullMatch => {
            let full = func == ScalarFunc::RegexpFullMatch;
            let mut out = BooleanArray::builder(n);
            for (s, p) in s.iter().zip(pattern.iter()) {
                let (Some(s), Some(p)) = (s, p) else {
                    out.append_null();
                    continue;
                };
                let re = regex.get(p, |p| compile(p, opts, full))?;
                out.append_value(re.is_match(s));
            }
            Arc::new(out.finish())
        }
        ScalarFunc::RegexpReplace => {
            let rep = text(2)?;
            let mut rewrites = Memo(None);
            let mut out = Vec::with_capacity(n);
            for ((s, p), r) in s.iter().zip(pattern.iter()).zip(rep.iter()) {
                let (Some(s), Some(p), Some(r)) = (s, p, r) else {
                    out.push(None);
                    continue;
                };
                let re = regex.get(p, |p| compile(p, opts, false))?;
                let rw = rewrites.get(r, rewrite)?;
                check_groups(re, rw).map_err(QuarryError::exec)?;
                out.push(Some(replace(re, s, rw, opts.global)));
            }
            Arc::new(StringArray::from(out))
        }
        ScalarFunc::RegexpExtract => {
            let group = match arrays.get(2) {
                Some(g) => arrow::compute::cast(g, &DataType::Int64)?,
                None => arrow::array::new_null_array(&DataType::Int64, 0),
            };
            let group = group.as_primitive::<Int64Type>();
            let mut out = Vec::with_capacity(n);
            for (i, (s, p)) in s.iter().zip(pattern.iter()).enumerate() {
                let (Some(s), Some(p)) = (s, p) else {
                    out.push(None);
                    continue;
                };
                let re = regex.get(p, |p| compile(p, opts, false))?;
                let g = if i < group.len() && group.is_valid(i) {
                    group.value(i) as usize
                } else {
                    0
                };
                // no match or a group that took no part: '' as in DuckDB
                let found = re
                    .captures(s)
                    .and_then(|c| c.get(g).map(|m| m.as_str().to_string()));
                out.push(Some(found.unwrap_or_default()));
            }
            Arc::new(StringArray::from(out))
        }
        other => {
            return Err(QuarryError::exec(format!(
                "internal error: {} is no regex function",
                other.name()
            )))
        }
    };
    Ok(out)
}

/// `s` with the first (or every) match of `re` replaced by `rw`.
fn replace(re: &Regex, s: &str, rw: &Rewrite, global: bool) -> String {
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    for caps in re.captures_iter(s) {
        let Some(m) = caps.get(0) else { break };
        out.push_str(&s[last..m.start()]);
        for piece in &rw.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Group(g) => out.push_str(caps.get(*g).map_or("", |m| m.as_str())),
            }
        }
        last = m.end();
        if !global {
            break;
        }
    }
    out.push_str(&s[last..]);
    out
}
