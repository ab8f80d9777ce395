//! The filter operator: keeps the rows for which every conjunct of the
//! predicate is true, testing the conjuncts in the order expected to cost
//! the least.
//!
//! The conjuncts are evaluated one after the other; once the rows still in
//! play are fewer than half the batch, the batch is cut down to them, so
//! that the later conjuncts look at fewer rows. Which conjunct goes first
//! matters: `l_shipmode IN ('MAIL', 'SHIP')` over 16-byte string views
//! costs several times `l_receiptdate < DATE '1995-01-01'` over 4-byte
//! dates, and the cheap test may drop more rows. The filter orders its
//! conjuncts by their cost per row over the share of rows they drop
//! (lowest first: the order that minimises the expected work of
//! independent tests). The cost is a fixed estimate from the expression
//! and its types (a measured time is too noisy to steer by: a first batch
//! that meets cold memory takes ten times the next); the share dropped is
//! counted, by every task of the stage into statistics they share.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow::array::BooleanArray;
use arrow::datatypes::{DataType, Schema};
use arrow::record_batch::RecordBatch;

use super::expr::evaluate_predicate;
use super::operator::Operator;
use crate::error::Result;
use crate::plan::{BinaryOp, Expr};

/// A conjunct goes before an earlier one when its cost per row dropped is
/// less than the earlier one's divided by this.
const CLEARLY_CHEAPER: f64 = 3.0;

/// A filter task orders its conjuncts again after this many batches.
const REORDER_EVERY: u32 = 4;

/// What the tasks of one stage have measured of each conjunct of its
/// filter (one per `OpSpec::Filter`, shared by its `FilterOp`s).
#[derive(Debug, Default)]
pub struct ConjunctStats {
    conjuncts: Vec<Measured>,
}

#[derive(Debug, Default)]
struct Measured {
    rows_in: AtomicU64,
    rows_kept: AtomicU64,
}

impl ConjunctStats {
    pub fn new(conjuncts: usize) -> Self {
        ConjunctStats {
            conjuncts: (0..conjuncts).map(|_| Measured::default()).collect(),
        }
    }

    fn add(&self, i: usize, rows_in: usize, rows_kept: usize) {
        if let Some(m) = self.conjuncts.get(i) {
            m.rows_in.fetch_add(rows_in as u64, Ordering::Relaxed);
            m.rows_kept.fetch_add(rows_kept as u64, Ordering::Relaxed);
        }
    }

    /// The conjuncts cheapest per row dropped first, given each one's cost
    /// per row; the written order among those not counted yet, and for ties.
    fn order(&self, costs: &[f64]) -> Vec<usize> {
        let rank = |i: usize| -> f64 {
            let Some(m) = self.conjuncts.get(i) else {
                return f64::INFINITY;
            };
            let rows_in = m.rows_in.load(Ordering::Relaxed);
            if rows_in == 0 {
                // not counted yet: after those known to drop rows, so that
                // it gets counted, and before those known to drop none
                return 1e30;
            }
            let kept = m.rows_kept.load(Ordering::Relaxed) as f64;
            let dropped = 1.0 - kept / rows_in as f64;
            let cost = costs.get(i).copied().unwrap_or(1.0);
            if dropped <= 0.0 {
                1e300 + cost
            } else {
                cost / dropped
            }
        };
        let ranks: Vec<f64> = (0..costs.len()).map(rank).collect();
        // The written order, changed only where a conjunct is clearly
        // cheaper per row dropped than one before it: moving a test ahead
        // can make the batch be cut (its columns copied) one more time,
        // which the ranks do not count, so near ranks are left alone.
        // (Each swap removes one inversion of the ranks' order: it ends.)
        let mut order: Vec<usize> = (0..costs.len()).collect();
        let mut swapped = true;
        while swapped {
            swapped = false;
            for j in 1..order.len() {
                if ranks[order[j]] * CLEARLY_CHEAPER < ranks[order[j - 1]] {
                    order.swap(j - 1, j);
                    swapped = true;
                }
            }
        }
        order
    }
}

/// About what evaluating `e` costs per row, in units of a compare of two
/// 4-byte integers; only the ratios between conjuncts matter.
fn cost_per_row(e: &Expr, schema: &Schema) -> f64 {
    let width = |e: &Expr| -> f64 {
        match e.data_type(schema) {
            Ok(DataType::Boolean) => 0.5,
            Ok(DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::UInt8)
            | Ok(DataType::UInt16 | DataType::UInt32 | DataType::Date32 | DataType::Float32) => 1.0,
            Ok(DataType::Int64 | DataType::UInt64 | DataType::Date64 | DataType::Float64) => 1.5,
            Ok(DataType::Utf8View) => 2.5,
            Ok(DataType::Decimal128(_, _)) => 3.0,
            _ => 4.0,
        }
    };
    let cost = |e: &Expr| cost_per_row(e, schema);
    match e {
        Expr::Column(_) | Expr::Literal(_) => 0.0,
        Expr::Binary { op, left, right } => {
            let own = match op {
                BinaryOp::And | BinaryOp::Or => 0.5,
                _ => width(left).max(width(right)),
            };
            own + cost(left) + cost(right)
        }
        Expr::Not(x) | Expr::IsNull(x) | Expr::IsNotNull(x) | Expr::Negative(x) => 0.5 + cost(x),
        Expr::Cast { expr, .. } => 2.0 + cost(expr),
        // an equality per item, and an OR
        Expr::InList { expr, list, .. } => {
            cost(expr)
                + list
                    .iter()
                    .map(|i| width(expr) + 0.5 + cost(i))
                    .sum::<f64>()
        }
        // a scan of each string's bytes
        Expr::Like { expr, pattern, .. } => 10.0 + cost(expr) + cost(pattern),
        Expr::Case {
            branches,
            else_expr,
            ..
        } => {
            2.0 + branches.iter().map(|(w, t)| cost(w) + cost(t)).sum::<f64>()
                + else_expr.as_deref().map_or(0.0, cost)
        }
        Expr::Function { args, .. } => 5.0 + args.iter().map(cost).sum::<f64>(),
        _ => 5.0,
    }
}

pub struct FilterOp {
    conjuncts: Vec<Expr>,
    stats: Arc<ConjunctStats>,
    /// Each conjunct's cost per row, once the first batch gave the schema.
    costs: Vec<f64>,
    order: Vec<usize>,
    batches: u32,
}

impl FilterOp {
    pub fn new(predicate: Expr, stats: Arc<ConjunctStats>) -> Self {
        let conjuncts = predicate.split_conjunction();
        let order = (0..conjuncts.len()).collect();
        FilterOp {
            conjuncts,
            stats,
            costs: vec![],
            order,
            batches: 0,
        }
    }
}

impl Operator for FilterOp {
    fn push(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> Result<()> {
        let measure = self.conjuncts.len() > 1;
        if measure && self.costs.is_empty() {
            let schema = batch.schema();
            self.costs = self
                .conjuncts
                .iter()
                .map(|c| cost_per_row(c, &schema))
                .collect();
            self.order = self.stats.order(&self.costs);
        } else if measure && self.batches.is_multiple_of(REORDER_EVERY) {
            self.order = self.stats.order(&self.costs);
        }
        self.batches += 1;
        let mut batch = batch;
        // Rows of `batch` still in play (None: all of them).
        let mut mask: Option<BooleanArray> = None;
        for &i in &self.order {
            let rows_in = mask.as_ref().map_or(batch.num_rows(), |m| m.true_count());
            let m = evaluate_predicate(&self.conjuncts[i], &batch)?;
            let m = match mask.take() {
                Some(prev) => arrow::compute::and(&prev, &m)?,
                None => m,
            };
            let kept = m.true_count();
            if measure {
                self.stats.add(i, rows_in, kept);
            }
            if kept == 0 {
                return Ok(());
            }
            if kept * 2 < batch.num_rows() {
                batch = arrow::compute::filter_record_batch(&batch, &m)?;
            } else if kept < batch.num_rows() {
                mask = Some(m);
            }
        }
        if let Some(m) = mask {
            batch = arrow::compute::filter_record_batch(&batch, &m)?;
        }
        if batch.num_rows() > 0 {
            out.push(batch);
        }
        Ok(())
    }

    fn finish(&mut self, _out: &mut Vec<RecordBatch>) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::BinaryOp;
    use arrow::array::{Array, Int64Array};
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion_common::ScalarValue;

    fn lt(col: usize, v: i64) -> Expr {
        Expr::Binary {
            op: BinaryOp::Lt,
            left: Box::new(Expr::Column(col)),
            right: Box::new(Expr::Literal(ScalarValue::Int64(Some(v)))),
        }
    }

    #[test]
    fn keeps_the_rows_every_conjunct_passes_in_either_order() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Int64, true),
        ]));
        let a: Vec<Option<i64>> = (0..1000).map(|i| (i % 7 != 0).then_some(i)).collect();
        let b: Vec<Option<i64>> = (0..1000).map(|i| Some(1000 - i)).collect();
        let batch = RecordBatch::try_new(
            schema,
            vec![Arc::new(Int64Array::from(a)), Arc::new(Int64Array::from(b))],
        )
        .unwrap();
        // a < 950 AND b < 100, that is 900 < i < 950, i not a multiple of 7
        let predicate = Expr::Binary {
            op: BinaryOp::And,
            left: Box::new(lt(0, 950)),
            right: Box::new(lt(1, 100)),
        };
        let want: Vec<i64> = (901..950).filter(|i| i % 7 != 0).collect();
        for first in [0, 1] {
            let stats = Arc::new(ConjunctStats::new(2));
            // as if counted: `first` drops almost every row
            stats.add(first, 1000, 1);
            let mut op = FilterOp::new(predicate.clone(), stats.clone());
            for round in 0..2 * REORDER_EVERY {
                let mut out = Vec::new();
                op.push(batch.clone(), &mut out).unwrap();
                let a = out[0]
                    .column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap();
                assert_eq!(a.values().to_vec(), want);
                assert_eq!(a.null_count(), 0);
                if round == 0 {
                    assert_eq!(op.order[0], first);
                }
            }
        }
    }

    #[test]
    fn uncounted_conjuncts_keep_their_written_order() {
        let stats = ConjunctStats::new(3);
        let costs = [1.0, 1.0, 4.0];
        assert_eq!(stats.order(&costs), vec![0, 1, 2]);
        // a counted conjunct that drops rows goes before the rest
        stats.add(2, 1000, 10);
        assert_eq!(stats.order(&costs), vec![2, 0, 1]);
        // one that drops nothing goes after the uncounted ones
        stats.add(0, 1000, 1000);
        assert_eq!(stats.order(&costs), vec![2, 1, 0]);
        // counted: 1 / 0.5, ahead of the one that drops nothing and, as
        // written, of 4 / 0.99 (not three times more)
        stats.add(1, 1000, 500);
        assert_eq!(stats.order(&costs), vec![1, 2, 0]);
    }

    #[test]
    fn only_a_clearly_cheaper_conjunct_moves_ahead() {
        let stats = ConjunctStats::new(2);
        stats.add(0, 1000, 500);
        stats.add(1, 1000, 100);
        // 1 / 0.5 against 1 / 0.9: near, the written order stays
        assert_eq!(stats.order(&[1.0, 1.0]), vec![0, 1]);
        // 6 / 0.5 against 1 / 0.9: the second goes first
        assert_eq!(stats.order(&[6.0, 1.0]), vec![1, 0]);
    }

    #[test]
    fn strings_and_decimals_cost_more_than_dates() {
        let schema = Schema::new(vec![
            arrow::datatypes::Field::new("d", DataType::Date32, true),
            arrow::datatypes::Field::new("s", DataType::Utf8View, true),
            arrow::datatypes::Field::new("m", DataType::Decimal128(15, 2), true),
        ]);
        let cmp = |c: usize, v: ScalarValue| Expr::Binary {
            op: BinaryOp::Lt,
            left: Box::new(Expr::Column(c)),
            right: Box::new(Expr::Literal(v)),
        };
        let date = cost_per_row(&cmp(0, ScalarValue::Date32(Some(1))), &schema);
        let text = cost_per_row(&cmp(1, ScalarValue::Utf8View(Some("a".into()))), &schema);
        let decimal = cost_per_row(&cmp(2, ScalarValue::Decimal128(Some(1), 15, 2)), &schema);
        assert!(date < text && text < decimal, "{date} {text} {decimal}");
        let in_two = Expr::InList {
            expr: Box::new(Expr::Column(1)),
            list: vec![
                Expr::Literal(ScalarValue::Utf8View(Some("a".into()))),
                Expr::Literal(ScalarValue::Utf8View(Some("b".into()))),
            ],
            negated: false,
        };
        assert!(cost_per_row(&in_two, &schema) > 2.0 * text);
    }
}
