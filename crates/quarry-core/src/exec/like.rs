//! LIKE with a pattern whose only wildcard is `%` (`'%special%requests%'`):
//! its literal parts are looked for in order with a substring search, where
//! arrow's kernel would compile such a pattern to a regular expression.

use arrow::array::{Array, ArrayAccessor, ArrayRef, AsArray, BooleanArray};
use arrow::buffer::BooleanBuffer;
use arrow::datatypes::DataType;
use memchr::memmem::Finder;

/// A LIKE pattern of literal parts between `%`s.
struct PercentPattern<'p> {
    /// Must begin the string (empty when the pattern starts with `%`).
    first: &'p [u8],
    /// Must appear in this order after `first`, without overlapping.
    middle: Vec<Finder<'p>>,
    /// Must end the string (empty when the pattern ends with `%`).
    last: &'p [u8],
}

impl<'p> PercentPattern<'p> {
    /// None for a pattern with `_`, an escape, or no `%` (arrow's kernel
    /// does those well).
    fn new(pattern: &'p str) -> Option<Self> {
        if pattern.contains(['_', '\\']) || !pattern.contains('%') {
            return None;
        }
        let parts: Vec<&[u8]> = pattern.split('%').map(str::as_bytes).collect();
        let (first, rest) = parts.split_first()?;
        let (last, middle) = rest.split_last()?;
        Some(PercentPattern {
            first,
            middle: middle
                .iter()
                .filter(|p| !p.is_empty())
                .map(|p| Finder::new(*p))
                .collect(),
            last,
        })
    }

    fn matches(&self, s: &[u8]) -> bool {
        let Some(rest) = s.strip_prefix(self.first) else {
            return false;
        };
        let Some(mut rest) = rest.strip_suffix(self.last) else {
            return false;
        };
        for part in &self.middle {
            match part.find(rest) {
                Some(at) => rest = &rest[at + part.needle().len()..],
                None => return false,
            }
        }
        true
    }
}

/// `v [NOT] LIKE pattern` for a string array and a pattern whose only
/// wildcard is `%`; None for any other.
pub fn like_percent(v: &ArrayRef, pattern: &str, negated: bool) -> Option<BooleanArray> {
    let pattern = PercentPattern::new(pattern)?;
    fn each<'a>(s: impl ArrayAccessor<Item = &'a str>, f: impl Fn(&[u8]) -> bool) -> BooleanBuffer {
        BooleanBuffer::collect_bool(s.len(), |i| f(s.value(i).as_bytes()))
    }
    let test = |s: &[u8]| pattern.matches(s) != negated;
    let values = match v.data_type() {
        DataType::Utf8View => each(v.as_string_view(), test),
        DataType::Utf8 => each(v.as_string::<i32>(), test),
        DataType::LargeUtf8 => each(v.as_string::<i64>(), test),
        _ => return None,
    };
    Some(BooleanArray::new(values, v.logical_nulls()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn like(s: &str, pattern: &str) -> bool {
        PercentPattern::new(pattern).unwrap().matches(s.as_bytes())
    }

    #[test]
    fn parts_in_order_anchored_where_there_is_no_percent() {
        assert!(like("a special lot of requests", "%special%requests%"));
        assert!(!like("requests special", "%special%requests%"));
        assert!(like("specialrequests", "%special%requests%"));
        // parts may not overlap: "aba" holds "ab" and "ba" only overlapping
        assert!(!like("aba", "%ab%ba%"));
        assert!(like("abba", "%ab%ba%"));
        assert!(like("abc", "a%c"));
        assert!(!like("abcd", "a%c"));
        assert!(!like("ac", "ab%bc"));
        assert!(like("abbc", "ab%bc"));
        assert!(!like("abc", "ab%bc"), "prefix and suffix may not overlap");
        assert!(like("", "%"));
        assert!(like("x", "%%"));
        assert!(like("héllo wörld", "h%ö%d"));
    }

    #[test]
    fn other_patterns_are_left_to_arrow() {
        assert!(PercentPattern::new("a_c%").is_none());
        assert!(PercentPattern::new("100\\%%").is_none());
        assert!(PercentPattern::new("plain").is_none());
    }
}
