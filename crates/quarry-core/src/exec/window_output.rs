//! The window operator's output, made a part at a time. A frame's value
//! is often repeated in every row of the frame: `string_agg(x) OVER
//! (PARTITION BY p)` puts the whole partition's text in each of its rows,
//! and `first_value(s)` one string in many. Repeated into one array, such
//! text passes the 2 GiB an Arrow string array can address long before
//! memory runs out; so a text column keeps each distinct value once
//! (`Picked`) and the rows are cut into parts whose copies stay small.

use arrow::array::{new_null_array, Array, ArrayRef, AsArray, UInt32Array};
use arrow::compute::{concat, interleave, take};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};

use crate::error::Result;

/// At most this many bytes of repeated text are copied into one part.
const PART_BYTES: usize = 64 << 20;

/// One window function's values for the rows of a chunk.
pub(super) enum WindowValues {
    /// One value a row, in the chunk's order.
    Rows(ArrayRef),
    /// Row i's value is `sources[rows[i].0]` at `rows[i].1`.
    Picked {
        sources: Vec<ArrayRef>,
        rows: Vec<(usize, usize)>,
    },
}

impl WindowValues {
    /// Row i's value is `sources[rows[i].0]` at `rows[i].1`: kept apart
    /// for text, whose copies could overflow; made at once otherwise.
    pub(super) fn picked(sources: Vec<ArrayRef>, rows: Vec<(usize, usize)>) -> Result<Self> {
        if sources
            .first()
            .is_some_and(|s| matches!(s.data_type(), DataType::Utf8 | DataType::Binary))
        {
            return Ok(WindowValues::Picked { sources, rows });
        }
        Ok(WindowValues::Rows(pick(&sources, &rows)?))
    }

    /// Row i's value is `values` at `indices[i]` (NULL where that is).
    pub(super) fn taken(values: &ArrayRef, indices: &UInt32Array) -> Result<Self> {
        if !matches!(values.data_type(), DataType::Utf8 | DataType::Binary) {
            return Ok(WindowValues::Rows(take(values.as_ref(), indices, None)?));
        }
        let null = new_null_array(values.data_type(), 1);
        let rows = indices
            .iter()
            .map(|i| i.map_or((1, 0), |r| (0, r as usize)))
            .collect();
        Ok(WindowValues::Picked {
            sources: vec![values.clone(), null],
            rows,
        })
    }

    /// The bytes row `i`'s value copies into the output beyond a fixed width.
    fn text_len(&self, i: usize) -> usize {
        let WindowValues::Picked { sources, rows } = self else {
            return 0;
        };
        let (s, r) = rows[i];
        let source = &sources[s];
        if source.is_null(r) {
            return 0;
        }
        match source.data_type() {
            DataType::Utf8 => source.as_string::<i32>().value_length(r) as usize,
            DataType::Binary => source.as_binary::<i32>().value_length(r) as usize,
            _ => 0,
        }
    }

    /// The values of rows `[from, from + len)`.
    pub(super) fn part(&self, from: usize, len: usize) -> Result<ArrayRef> {
        match self {
            WindowValues::Rows(values) => Ok(values.slice(from, len)),
            WindowValues::Picked { sources, rows } => pick(sources, &rows[from..from + len]),
        }
    }
}

/// The value of each of `rows` (source, row) of `sources`.
fn pick(sources: &[ArrayRef], rows: &[(usize, usize)]) -> Result<ArrayRef> {
    if let [source] = sources {
        let indices = UInt32Array::from_iter_values(rows.iter().map(|&(_, r)| r as u32));
        return Ok(take(source.as_ref(), &indices, None)?);
    }
    let refs: Vec<&dyn Array> = sources.iter().map(|s| s.as_ref()).collect();
    if rows.is_empty() {
        return Ok(concat(&refs)?.slice(0, 0));
    }
    Ok(interleave(&refs, rows)?)
}

/// The rows of a window operator's batches with their window values,
/// given out a part at a time.
pub(super) struct WindowOutput {
    schema: SchemaRef,
    /// The input rows, as they came.
    batches: Vec<RecordBatch>,
    /// Each function's values for all the rows.
    values: Vec<WindowValues>,
    /// Where each part ends, as a row of all the batches; no part crosses
    /// from one batch into the next.
    cuts: Vec<usize>,
    next: usize,
    /// The batch of the next part, and its first row.
    batch: usize,
    batch_start: usize,
}

impl WindowOutput {
    pub(super) fn new(
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
        values: Vec<WindowValues>,
    ) -> Self {
        let ends: Vec<usize> = batches
            .iter()
            .scan(0, |end, b| {
                *end += b.num_rows();
                Some(*end)
            })
            .collect();
        let cuts = cuts(&ends, &values, PART_BYTES);
        WindowOutput {
            schema,
            batches,
            values,
            cuts,
            next: 0,
            batch: 0,
            batch_start: 0,
        }
    }

    pub(super) fn is_done(&self) -> bool {
        self.next == self.cuts.len()
    }

    /// The next part's rows, or None when all were given.
    pub(super) fn next_part(&mut self) -> Result<Option<RecordBatch>> {
        let Some(&end) = self.cuts.get(self.next) else {
            return Ok(None);
        };
        let from = match self.next {
            0 => 0,
            k => self.cuts[k - 1],
        };
        self.next += 1;
        while from >= self.batch_start + self.batches[self.batch].num_rows() {
            self.batch_start += self.batches[self.batch].num_rows();
            self.batch += 1;
        }
        let len = end - from;
        let batch = &self.batches[self.batch];
        let mut columns: Vec<ArrayRef> = batch
            .columns()
            .iter()
            .map(|c| c.slice(from - self.batch_start, len))
            .collect();
        for v in &self.values {
            columns.push(v.part(from, len)?);
        }
        let opts = RecordBatchOptions::new().with_row_count(Some(len));
        Ok(Some(RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &opts,
        )?))
    }
}

/// Where the parts of batches ending at rows `ends` end: at every batch's
/// end, and inside a batch wherever the picked text copied would pass
/// `limit` bytes (a part has at least one row).
fn cuts(ends: &[usize], values: &[WindowValues], limit: usize) -> Vec<usize> {
    let picked: Vec<&WindowValues> = values
        .iter()
        .filter(|v| matches!(v, WindowValues::Picked { .. }))
        .collect();
    let mut cuts = Vec::new();
    let mut from = 0;
    for &end in ends {
        if end == from {
            continue;
        }
        let mut bytes = 0;
        for i in (from..end).filter(|_| !picked.is_empty()) {
            let row: usize = picked.iter().map(|v| v.text_len(i)).sum();
            if bytes > 0 && bytes + row > limit {
                cuts.push(i);
                bytes = 0;
            }
            bytes += row;
        }
        cuts.push(end);
        from = end;
    }
    cuts
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{Field, Int64Type, Schema};
    use std::sync::Arc;

    /// Text repeated into the rows is copied a part at a time, within the
    /// limit, and the parts together hold each row's value.
    #[test]
    fn picked_text_in_parts() {
        let frames: ArrayRef = Arc::new(StringArray::from(vec![Some("aaaa"), None, Some("bb")]));
        let more: ArrayRef = Arc::new(StringArray::from(vec!["cccccc"]));
        let rows = vec![(0, 0), (0, 0), (0, 1), (1, 0), (0, 2), (0, 0)];
        let values = vec![WindowValues::picked(vec![frames, more], rows).unwrap()];
        // (texts of 4, 4, 0, 6, 2 and 4 bytes)
        assert_eq!(cuts(&[6], &values, 8), vec![3, 5, 6]);
        assert_eq!(cuts(&[6], &values, 4), vec![1, 3, 4, 5, 6]);
        assert_eq!(cuts(&[6], &values, 100), vec![6]);
        assert_eq!(cuts(&[2, 2, 6], &values, 8), vec![2, 5, 6]);
        assert_eq!(cuts(&[4, 6], &values, 8), vec![3, 4, 6]);

        // two batches of input rows
        let input = Arc::new(Schema::new(vec![Field::new("i", DataType::Int64, false)]));
        let batches = [0..4, 4..6].map(|r| {
            RecordBatch::try_new(
                input.clone(),
                vec![Arc::new(Int64Array::from_iter_values(r))],
            )
            .unwrap()
        });
        let schema = Arc::new(Schema::new(vec![
            Field::new("i", DataType::Int64, false),
            Field::new("s", DataType::Utf8, true),
        ]));
        let mut out = WindowOutput::new(schema, batches.to_vec(), values);
        out.cuts = cuts(&[4, 6], &out.values, 8);
        let mut got = Vec::new();
        let mut sizes = Vec::new();
        while let Some(part) = out.next_part().unwrap() {
            sizes.push(part.num_rows());
            let s = part.column(1).as_string::<i32>();
            let i = part.column(0).as_primitive::<Int64Type>();
            for r in 0..part.num_rows() {
                got.push((i.value(r), s.is_valid(r).then(|| s.value(r).to_string())));
            }
        }
        assert!(out.is_done());
        assert_eq!(sizes, vec![3, 1, 2]);
        let want: Vec<(i64, Option<String>)> = [
            Some("aaaa"),
            Some("aaaa"),
            None,
            Some("cccccc"),
            Some("bb"),
            Some("aaaa"),
        ]
        .iter()
        .enumerate()
        .map(|(i, s)| (i as i64, s.map(String::from)))
        .collect();
        assert_eq!(got, want);
    }

    /// Text taken by row, NULL where a row has none.
    #[test]
    fn taken_text_with_nulls() {
        let s: ArrayRef = Arc::new(StringArray::from(vec!["p", "q"]));
        let v = WindowValues::taken(&s, &UInt32Array::from(vec![Some(1), None, Some(0)])).unwrap();
        assert!(matches!(v, WindowValues::Picked { .. }));
        let got = v.part(0, 3).unwrap();
        let got = got.as_string::<i32>();
        let got: Vec<Option<&str>> = got.iter().collect();
        assert_eq!(got, vec![Some("q"), None, Some("p")]);
    }

    /// Values of a fixed width are made at once.
    #[test]
    fn fixed_width_values_at_once() {
        let ints: ArrayRef = Arc::new(Int64Array::from(vec![7, 8]));
        let v = WindowValues::picked(vec![ints], vec![(0, 1), (0, 0), (0, 1)]).unwrap();
        let WindowValues::Rows(a) = &v else {
            panic!("not made at once")
        };
        let a = a.as_primitive::<Int64Type>();
        assert_eq!(a.values().to_vec(), vec![8, 7, 8]);
    }
}
