//! The per-group state of an aggregate function, and the choice of one
//! for an aggregate expression.

use arrow::array::ArrayRef;
use arrow::datatypes::{DataType, Decimal128Type, Float64Type, Int64Type};

use super::avg::AvgAcc;
use super::count::CountAcc;
use super::distinct::DistinctAcc;
use super::min_max::new_min_max;
use super::more;
use super::sum::SumAcc;
use super::variance::VarianceAcc;
use crate::error::{QuarryError, Result};
use crate::plan::expr::aggregate_result_type;
use crate::plan::expr::AggParam;
use crate::plan::{AggFunc, AggregateExpr};

/// Per-group state of one aggregate function, updated a batch at a time.
pub(crate) trait GroupAccumulator: Send {
    /// Folds raw input values (None for count(*)) into the groups.
    fn update(
        &mut self,
        groups: &[usize],
        num_groups: usize,
        values: Option<&ArrayRef>,
    ) -> Result<()>;
    /// Folds partial states (as produced by `state`) into the groups.
    fn merge(&mut self, groups: &[usize], num_groups: usize, states: &[ArrayRef]) -> Result<()>;
    fn state_width(&self) -> usize {
        1
    }
    /// Makes sure there is state for `n` groups.
    fn resize(&mut self, n: usize);
    fn state(&mut self) -> Result<Vec<ArrayRef>>;
    fn evaluate(&mut self) -> Result<ArrayRef>;
    /// Bytes held beyond the fixed state per group (DISTINCT's sets).
    fn extra_bytes(&self) -> usize {
        0
    }
    /// Folds `rows` rows without values into `group` (count(*) only).
    fn add_rows(&mut self, _group: usize, _rows: usize) -> Result<()> {
        Err(QuarryError::exec(
            "internal error: only count(*) folds rows without values",
        ))
    }
}

pub(crate) fn new_accumulator(
    agg: &AggregateExpr,
    arg_type: &DataType,
) -> Result<Box<dyn GroupAccumulator>> {
    if agg.distinct {
        return Ok(Box::new(DistinctAcc {
            agg: agg.clone(),
            arg_type: arg_type.clone(),
            sets: vec![],
            spellings: vec![],
            bytes: 0,
        }));
    }
    let result = aggregate_result_type(agg.func, arg_type);
    Ok(match agg.func {
        AggFunc::Count | AggFunc::CountStar => Box::new(CountAcc { counts: vec![] }),
        AggFunc::Sum => match &result {
            DataType::Int64 => Box::new(SumAcc::<Int64Type>::new(result)),
            DataType::Decimal128(_, _) => Box::new(SumAcc::<Decimal128Type>::new(result)),
            DataType::Float64 => Box::new(SumAcc::<Float64Type>::new(result)),
            other => return Err(QuarryError::plan(format!("sum is not defined for {other}"))),
        },
        AggFunc::Avg => Box::new(AvgAcc::new(arg_type)),
        AggFunc::Min | AggFunc::Max => new_min_max(agg.func == AggFunc::Min, arg_type),
        AggFunc::VarSamp | AggFunc::VarPop | AggFunc::StddevSamp | AggFunc::StddevPop => {
            Box::new(VarianceAcc::new(agg.func))
        }
        AggFunc::StringAgg => match &agg.param {
            Some(AggParam::Separator(s)) => Box::new(more::StringAggAcc::new(s.clone())),
            Some(AggParam::OrderedSeparator { separator, keys }) => Box::new(
                more::OrderedStringAggAcc::new(separator.clone(), keys.clone(), arg_type),
            ),
            _ => return Err(missing_param(agg)),
        },
        AggFunc::ArgMin | AggFunc::ArgMax => Box::new(more::ArgMinMaxAcc::new(
            agg.func == AggFunc::ArgMin,
            arg_type,
        )?),
        AggFunc::QuantileCont | AggFunc::QuantileDisc => match agg.param {
            Some(AggParam::Quantile(q)) => Box::new(more::QuantileAcc::new(
                q,
                agg.func == AggFunc::QuantileCont,
                arg_type,
            )),
            _ => return Err(missing_param(agg)),
        },
        AggFunc::ApproxCountDistinct => Box::new(more::ApproxDistinctAcc::new()),
    })
}

pub(super) fn missing_param(agg: &AggregateExpr) -> QuarryError {
    QuarryError::exec(format!(
        "internal error: {}() without its constant argument",
        agg.func.name()
    ))
}
