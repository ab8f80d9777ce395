//! The series of a LATERAL `range(…)` / `generate_series(…)` (`FROM t,
//! generate_series(1, t.n)`): each input row once per value of the series
//! its arguments give, the value as a last column. One row's series may be
//! long, so the output comes in batches of at most `OUTPUT_ROWS` rows, the
//! rest pending until the task resumes the operator.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int64Array, UInt32Array};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;

use super::expr::{cast_checked, evaluate_array};
use super::operator::Operator;
use crate::catalog::Series;
use crate::error::{QuarryError, Result};
use crate::plan::Expr;

/// Rows per output batch.
const OUTPUT_ROWS: usize = 8192;

pub struct SeriesOp {
    args: Vec<Expr>,
    inclusive: bool,
    schema: SchemaRef,
    pending: Option<Expansion>,
}

/// An input batch being expanded.
struct Expansion {
    batch: RecordBatch,
    /// Each row's series (None: an argument is NULL).
    series: Vec<Option<Series>>,
    /// The row whose values come next, and how many of them are out.
    row: usize,
    done: u64,
}

impl SeriesOp {
    pub fn new(args: Vec<Expr>, inclusive: bool, schema: SchemaRef) -> Self {
        SeriesOp {
            args,
            inclusive,
            schema,
            pending: None,
        }
    }

    fn name(&self) -> &'static str {
        if self.inclusive {
            "generate_series"
        } else {
            "range"
        }
    }

    /// Each row's series.
    fn series_of(&self, batch: &RecordBatch) -> Result<Vec<Option<Series>>> {
        let args = self
            .args
            .iter()
            .map(|e| {
                let a = evaluate_array(e, batch)?;
                let a = cast_checked(&a, &DataType::Int64)?;
                Ok(a.as_any()
                    .downcast_ref::<Int64Array>()
                    .ok_or_else(|| QuarryError::exec("series: arguments are not BIGINT"))?
                    .clone())
            })
            .collect::<Result<Vec<Int64Array>>>()?;
        let mut values = Vec::with_capacity(args.len());
        (0..batch.num_rows())
            .map(|row| {
                if args.iter().any(|a| a.is_null(row)) {
                    return Ok(None);
                }
                values.clear();
                values.extend(args.iter().map(|a| a.value(row)));
                Ok(Some(Series::new(self.name(), &values, self.inclusive)?))
            })
            .collect()
    }

    /// The next output batch of the pending expansion (none when the rest
    /// of its rows have empty series).
    fn step(&mut self, out: &mut Vec<RecordBatch>) -> Result<()> {
        let Some(x) = &mut self.pending else {
            return Ok(());
        };
        let mut rows: Vec<u32> = Vec::with_capacity(OUTPUT_ROWS);
        let mut values: Vec<i64> = Vec::with_capacity(OUTPUT_ROWS);
        while x.row < x.series.len() && values.len() < OUTPUT_ROWS {
            let s = match x.series[x.row] {
                Some(s) if x.done < s.len => s,
                _ => {
                    x.row += 1;
                    x.done = 0;
                    continue;
                }
            };
            let n = (s.len - x.done).min((OUTPUT_ROWS - values.len()) as u64);
            rows.extend(std::iter::repeat_n(x.row as u32, n as usize));
            values.extend((x.done..x.done + n).map(|k| s.value(k)));
            x.done += n;
        }
        let finished = x.row >= x.series.len();
        if !values.is_empty() {
            let indices = UInt32Array::from(rows);
            let mut columns = x
                .batch
                .columns()
                .iter()
                .map(|c| Ok(arrow::compute::take(c, &indices, None)?))
                .collect::<Result<Vec<ArrayRef>>>()?;
            columns.push(Arc::new(Int64Array::from(values)));
            out.push(RecordBatch::try_new(self.schema.clone(), columns)?);
        }
        if finished {
            self.pending = None;
        }
        Ok(())
    }
}

impl Operator for SeriesOp {
    fn push(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> Result<()> {
        if self.pending.is_some() {
            return Err(QuarryError::exec("series: push with output pending"));
        }
        let series = self.series_of(&batch)?;
        self.pending = Some(Expansion {
            batch,
            series,
            row: 0,
            done: 0,
        });
        self.step(out)
    }

    fn finish(&mut self, _out: &mut Vec<RecordBatch>) -> Result<()> {
        Ok(())
    }

    fn has_pending(&self) -> bool {
        self.pending.is_some()
    }

    fn resume(&mut self, out: &mut Vec<RecordBatch>) -> Result<()> {
        self.step(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{Field, Schema};

    fn input(ns: &[Option<i64>]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(ns.to_vec()))]).unwrap()
    }

    fn op(args: Vec<Expr>, inclusive: bool) -> SeriesOp {
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, true),
            Field::new("g", DataType::Int64, false),
        ]));
        SeriesOp::new(args, inclusive, schema)
    }

    /// Every (n, value) pair the operator gives for `batch`, and the sizes
    /// of its batches.
    fn run(op: &mut SeriesOp, batch: RecordBatch) -> (Vec<(Option<i64>, i64)>, Vec<usize>) {
        let mut out = vec![];
        op.push(batch, &mut out).unwrap();
        while op.has_pending() {
            op.resume(&mut out).unwrap();
        }
        let mut pairs = vec![];
        for b in &out {
            let n = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            let g = b.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
            for i in 0..b.num_rows() {
                pairs.push((n.is_valid(i).then(|| n.value(i)), g.value(i)));
            }
        }
        (pairs, out.iter().map(|b| b.num_rows()).collect())
    }

    fn lit(v: i64) -> Expr {
        Expr::Literal(datafusion_common::ScalarValue::Int64(Some(v)))
    }

    #[test]
    fn each_row_its_own_series() {
        // generate_series(1, n): n = 3, 0, NULL, -2, 2
        let mut op = op(vec![lit(1), Expr::Column(0)], true);
        let (pairs, _) = run(&mut op, input(&[Some(3), Some(0), None, Some(-2), Some(2)]));
        let want = [(3, 1), (3, 2), (3, 3), (2, 1), (2, 2)];
        assert_eq!(pairs, want.map(|(n, g)| (Some(n), g)));
        // range(n, 0, -2): stop excluded, going down
        let mut op = super::tests::op(vec![Expr::Column(0), lit(0), lit(-2)], false);
        let (pairs, _) = run(&mut op, input(&[Some(5), Some(0)]));
        assert_eq!(pairs, [(Some(5), 5), (Some(5), 3), (Some(5), 1)]);
    }

    #[test]
    fn long_series_come_in_bounded_batches() {
        let mut op = op(vec![Expr::Column(0)], false);
        let n = 3 * OUTPUT_ROWS as i64 + 7;
        let (pairs, sizes) = run(&mut op, input(&[Some(2), Some(n), Some(1)]));
        assert_eq!(pairs.len() as i64, 2 + n + 1);
        assert!(sizes.iter().all(|&s| s <= OUTPUT_ROWS), "{sizes:?}");
        assert_eq!(sizes.len(), 4);
        assert_eq!(pairs[2], (Some(n), 0));
        assert_eq!(pairs[pairs.len() - 2], (Some(n), n - 1));
        assert_eq!(pairs[pairs.len() - 1], (Some(1), 0));
    }

    #[test]
    fn a_zero_step_is_an_error() {
        let mut op = op(vec![lit(1), Expr::Column(0), lit(0)], true);
        let err = op.push(input(&[Some(3)]), &mut vec![]).unwrap_err();
        assert!(err.to_string().contains("step cannot be 0"), "{err}");
    }
}
