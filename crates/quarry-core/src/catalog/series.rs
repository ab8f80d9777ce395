//! `range(…)` and `generate_series(…)`: a table of one BIGINT column,
//! computed as it is scanned (nothing held in memory), in partitions of up
//! to a million values so that large series are read in parallel.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use arrow::array::Int64Array;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};

use serde::{Deserialize, Serialize};

use super::{ScanDescriptor, ScanPartition, TableProvider, TableStats};
use crate::error::{QuarryError, Result};
use crate::plan::Expr;

/// Values per partition.
const PARTITION_ROWS: u64 = 1 << 20;
/// Values per batch.
const BATCH_ROWS: u64 = 8192;

/// `start`, `start + step`, … while before `stop` (after it for a negative
/// step), like DuckDB's `range(start, stop, step)`; or up to and including
/// `stop` for `generate_series`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Series {
    pub start: i64,
    pub step: i64,
    pub len: u64,
}

impl Series {
    pub const EMPTY: Series = Series {
        start: 0,
        step: 1,
        len: 0,
    };

    /// `range(stop)`, `range(start, stop[, step])` (stop excluded), or with
    /// `inclusive` `generate_series(…)` (stop included); `name` names the
    /// function in errors.
    pub fn new(name: &str, args: &[i64], inclusive: bool) -> Result<Self> {
        let (start, stop, step) = match *args {
            [stop] => (0, stop, 1),
            [start, stop] => (start, stop, 1),
            [start, stop, step] => (start, stop, step),
            _ => {
                return Err(QuarryError::plan(format!(
                    "{name}() takes 1 to 3 integer arguments, got {}",
                    args.len()
                )))
            }
        };
        if step == 0 {
            return Err(QuarryError::plan(format!("{name}(): the step cannot be 0")));
        }
        let (start_w, stop_w, step_w) = (start as i128, stop as i128, step as i128);
        // values v = start + k*step with v < stop (v > stop going down), or
        // v <= stop (v >= stop) for generate_series
        let span = if step > 0 {
            stop_w - start_w
        } else {
            start_w - stop_w
        };
        let stride = step_w.abs();
        let len = if inclusive {
            if span < 0 {
                0
            } else {
                span / stride + 1
            }
        } else if span <= 0 {
            0
        } else {
            (span + stride - 1) / stride
        };
        Ok(Series {
            start,
            step,
            len: len as u64,
        })
    }

    /// The value at position `k` (< len, so it is within start..=stop).
    pub fn value(&self, k: u64) -> i64 {
        (self.start as i128 + k as i128 * self.step as i128) as i64
    }
}

/// A series as a table of one BIGINT column.
#[derive(Debug)]
pub struct SeriesTable {
    schema: SchemaRef,
    series: Series,
}

impl SeriesTable {
    /// The table of `series`, its column named `name`.
    pub fn new(name: &str, series: Series) -> Self {
        let schema = Arc::new(Schema::new(vec![Field::new(name, DataType::Int64, false)]));
        SeriesTable { schema, series }
    }
}

impl TableProvider for SeriesTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn statistics(&self) -> TableStats {
        TableStats {
            num_rows: Some(self.series.len as usize),
        }
    }

    fn column_range(&self, _column: usize) -> Option<(f64, f64)> {
        let s = &self.series;
        if s.len == 0 {
            return None;
        }
        let (a, b) = (s.value(0) as f64, s.value(s.len - 1) as f64);
        Some((a.min(b), a.max(b)))
    }

    fn kind(&self) -> &'static str {
        "series"
    }

    fn partitions(
        &self,
        projection: &[usize],
        _filters: &[Expr],
    ) -> Result<Vec<Arc<dyn ScanPartition>>> {
        let schema = Arc::new(self.schema.project(projection)?);
        let s = &self.series;
        let parts = (0..s.len)
            .step_by(PARTITION_ROWS as usize)
            .map(|from| {
                Arc::new(SeriesPartition {
                    schema: schema.clone(),
                    first: s.value(from),
                    step: s.step,
                    len: PARTITION_ROWS.min(s.len - from),
                }) as Arc<dyn ScanPartition>
            })
            .collect();
        Ok(parts)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeriesPartition {
    /// The one column, or none (count(*)).
    schema: SchemaRef,
    first: i64,
    step: i64,
    len: u64,
}

impl ScanPartition for SeriesPartition {
    fn read(
        &self,
        sink: &mut dyn FnMut(RecordBatch) -> Result<()>,
        _fetched: &AtomicU64,
    ) -> Result<()> {
        let mut done = 0;
        while done < self.len {
            let n = BATCH_ROWS.min(self.len - done);
            let batch = if self.schema.fields().is_empty() {
                let opts = RecordBatchOptions::new().with_row_count(Some(n as usize));
                RecordBatch::try_new_with_options(self.schema.clone(), vec![], &opts)?
            } else {
                let first = self.first as i128 + done as i128 * self.step as i128;
                let values: Int64Array = (0..n)
                    .map(|k| (first + k as i128 * self.step as i128) as i64)
                    .collect();
                RecordBatch::try_new(self.schema.clone(), vec![Arc::new(values)])?
            };
            sink(batch)?;
            done += n;
        }
        Ok(())
    }

    fn describe(&self) -> Result<ScanDescriptor> {
        Ok(ScanDescriptor::Series(self.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(t: &SeriesTable) -> Vec<i64> {
        let mut out = vec![];
        for p in t.partitions(&[0], &[]).unwrap() {
            p.read(
                &mut |b| {
                    let a = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                    out.extend(a.values().iter().copied());
                    Ok(())
                },
                &AtomicU64::new(0),
            )
            .unwrap();
        }
        out
    }

    #[test]
    fn ends_steps_and_extremes() {
        let table = |a: &[i64], inclusive| {
            values(&SeriesTable::new(
                "g",
                Series::new("g", a, inclusive).unwrap(),
            ))
        };
        let range = |a: &[i64]| table(a, false);
        let series = |a: &[i64]| table(a, true);
        assert_eq!(range(&[4]), [0, 1, 2, 3]);
        assert_eq!(range(&[2, 5]), [2, 3, 4]);
        assert_eq!(range(&[0, 10, 4]), [0, 4, 8]);
        assert_eq!(range(&[5, 0, -2]), [5, 3, 1]);
        assert_eq!(range(&[5, 5]), Vec::<i64>::new());
        assert_eq!(range(&[5, 0]), Vec::<i64>::new());
        assert_eq!(series(&[1, 3]), [1, 2, 3]);
        assert_eq!(series(&[0, 10, 5]), [0, 5, 10]);
        assert_eq!(series(&[3, 1, -1]), [3, 2, 1]);
        assert_eq!(series(&[3, 1]), Vec::<i64>::new());
        assert_eq!(
            series(&[i64::MAX - 1, i64::MAX]),
            [i64::MAX - 1, i64::MAX],
            "no overflow at the end of BIGINT"
        );
        assert_eq!(range(&[i64::MIN, i64::MAX, i64::MAX]).len(), 3);
        assert!(Series::new("range", &[1, 2, 0], false).is_err());
        // several partitions, in order
        let big = range(&[0, 3 * PARTITION_ROWS as i64 + 5]);
        assert_eq!(big.len() as u64, 3 * PARTITION_ROWS + 5);
        assert!(big.windows(2).all(|w| w[1] == w[0] + 1));
    }
}
