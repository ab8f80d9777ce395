//! `column = 'text'` (and `<>`) on a string-view column, decided on the
//! 16-byte views: a string of up to 12 bytes lies whole in its view, and a
//! longer one is compared in full only when its length and 4-byte prefix
//! match. Arrow's general kernel looks at each string's bytes instead.

use arrow::array::{Array, BooleanArray, StringViewArray};
use arrow::buffer::BooleanBuffer;

/// `array = text`, or `array <> text` with `negated`; NULL where the
/// array is NULL.
pub fn eq_text(array: &StringViewArray, text: &str, negated: bool) -> BooleanArray {
    let views = array.views();
    let len = text.len() as u128;
    let bytes = text.as_bytes();
    let values = if bytes.len() <= 12 {
        // length in the low 4 bytes, the bytes after it
        let mut inline = [0u8; 16];
        inline[4..4 + bytes.len()].copy_from_slice(bytes);
        let data = u128::from_le_bytes(inline) | len;
        // only the length and the string's own bytes: the padding is not
        // compared, whatever a writer left there
        let mask = if bytes.len() == 12 {
            u128::MAX
        } else {
            (1u128 << (32 + 8 * bytes.len())) - 1
        };
        BooleanBuffer::collect_bool(array.len(), |i| (views[i] & mask == data) != negated)
    } else {
        let mut head = [0u8; 8];
        head[4..].copy_from_slice(&bytes[..4]);
        let head = u64::from_le_bytes(head) | len as u64;
        BooleanBuffer::collect_bool(array.len(), |i| {
            let same = views[i] as u64 == head && array.value(i).as_bytes() == bytes;
            same != negated
        })
    };
    BooleanArray::new(values, array.nulls().cloned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Datum, Scalar};
    use arrow::compute::kernels::cmp;

    #[test]
    fn agrees_with_arrow_on_short_long_and_null_strings() {
        let texts = [
            "",
            "a",
            "MAIL",
            "exactly12byt",
            "thirteen byte",
            "a longer string than twelve",
            "a longer string than twelve!",
        ];
        let mut column: Vec<Option<&str>> = texts.iter().map(|t| Some(*t)).collect();
        column.extend([None, Some("MAI"), Some("MAILS"), Some("a longer string xx")]);
        let array = StringViewArray::from(column);
        for t in texts.iter().chain(&["absent", "a longer string not there"]) {
            let scalar: &dyn Datum = &Scalar::new(StringViewArray::from(vec![*t]));
            let want = cmp::eq(&array, scalar).unwrap();
            assert_eq!(eq_text(&array, t, false), want, "= {t:?}");
            let want = cmp::neq(&array, scalar).unwrap();
            assert_eq!(eq_text(&array, t, true), want, "<> {t:?}");
        }
        // a slice keeps its own positions
        let sliced = array.slice(2, 5);
        assert_eq!(
            eq_text(&sliced, "exactly12byt", false),
            BooleanArray::from(vec![false, true, false, false, false])
        );
    }
}
