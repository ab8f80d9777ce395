//! `column = 'text'` (and `<>`, `IN`, `NOT IN`) on a string-view column, decided on the
//! 16-byte views: a string of up to 12 bytes lies whole in its view, and a
//! longer one is compared in full only when its length and 4-byte prefix
//! match. Arrow's general kernel looks at each string's bytes instead.

use arrow::array::{Array, BooleanArray, StringViewArray};
use arrow::buffer::BooleanBuffer;

/// `array = text`, or `array <> text` with `negated`; NULL where the
/// array is NULL.
pub fn eq_text(array: &StringViewArray, text: &str, negated: bool) -> BooleanArray {
    in_texts(array, &[text], negated)
}

/// `array IN (texts)`, or `NOT IN` with `negated`; NULL where the array is
/// NULL. One pass over the views whatever the number of texts.
pub fn in_texts(array: &StringViewArray, texts: &[&str], negated: bool) -> BooleanArray {
    let views = array.views();
    // Texts of up to 12 bytes: the view each would have (length in the low
    // 4 bytes, the bytes after it) and the bits of it that count: only the
    // length and the string's own bytes, not the padding, whatever a writer
    // left there.
    let mut inline = Vec::new();
    // Longer texts: the low 8 bytes of their view (length and 4-byte
    // prefix), then the bytes.
    let mut long = Vec::new();
    for text in texts {
        let bytes = text.as_bytes();
        if bytes.len() <= 12 {
            let mut view = [0u8; 16];
            view[4..4 + bytes.len()].copy_from_slice(bytes);
            let data = u128::from_le_bytes(view) | bytes.len() as u128;
            let mask = if bytes.len() == 12 {
                u128::MAX
            } else {
                (1u128 << (32 + 8 * bytes.len())) - 1
            };
            inline.push((data, mask));
        } else {
            let mut head = [0u8; 8];
            head[4..].copy_from_slice(&bytes[..4]);
            long.push((u64::from_le_bytes(head) | bytes.len() as u64, bytes));
        }
    }
    // The view last found equal to a long text: strings decoded from a
    // Parquet dictionary share the view of their dictionary entry, so a
    // repeat is known equal without reading its bytes again.
    let mut last_equal: Option<u128> = None;
    let values = BooleanBuffer::collect_bool(array.len(), |i| {
        let view = views[i];
        let found = if view as u32 <= 12 {
            inline.iter().any(|&(data, mask)| view & mask == data)
        } else if last_equal == Some(view) {
            true
        } else {
            let head = view as u64;
            let equal = long
                .iter()
                .any(|&(h, bytes)| h == head && array.value(i).as_bytes() == bytes);
            if equal {
                last_equal = Some(view);
            }
            equal
        };
        found != negated
    });
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

    #[test]
    fn in_texts_agrees_with_or_of_equalities() {
        let long = "a longer string than twelve";
        let column: Vec<Option<&str>> = vec![
            Some("MAIL"),
            Some("SHIP"),
            None,
            Some(long),
            Some("AIR"),
            Some(long),
            Some("a longer string than twelve?"),
            Some("exactly12byt"),
            Some(""),
        ];
        let array = StringViewArray::from(column);
        let lists: [&[&str]; 4] = [
            &["MAIL", "SHIP"],
            &[long, "AIR", ""],
            &["exactly12byt", "nothing"],
            &[],
        ];
        for texts in lists {
            for negated in [false, true] {
                let mut want: Option<BooleanArray> = None;
                for t in texts {
                    let scalar: &dyn Datum = &Scalar::new(StringViewArray::from(vec![*t]));
                    let eq = cmp::eq(&array, scalar).unwrap();
                    want = Some(match want {
                        None => eq,
                        Some(w) => arrow::compute::or(&w, &eq).unwrap(),
                    });
                }
                let mut want = want.unwrap_or_else(|| {
                    BooleanArray::new(
                        BooleanBuffer::new_unset(array.len()),
                        array.nulls().cloned(),
                    )
                });
                if negated {
                    want = arrow::compute::not(&want).unwrap();
                }
                assert_eq!(
                    in_texts(&array, texts, negated),
                    want,
                    "{texts:?} {negated}"
                );
            }
        }
    }
}
