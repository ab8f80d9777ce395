//! Build-side choice for semi and anti joins. The subquery side of EXISTS /
//! IN is the right (hashed) input; when it is the larger side (TPC-H Q21's
//! lineitem against a filtered few orders), hash the left side instead and
//! stream the right: the join becomes a right semi / right anti join with
//! its inputs swapped.

use super::cardinality::estimate;
use super::map_inputs;
use crate::error::Result;
use crate::plan::{JoinKind, LogicalPlan};

/// Swap when the right side is estimated this many times larger.
const SWAP_FACTOR: f64 = 4.0;

pub fn choose_build_sides(plan: LogicalPlan) -> Result<LogicalPlan> {
    let plan = map_inputs(plan, &mut choose_build_sides)?;
    let LogicalPlan::Join {
        left,
        right,
        kind,
        on,
        filter,
        schema,
    } = plan
    else {
        return Ok(plan);
    };
    let swapped_kind = match kind {
        JoinKind::Semi => JoinKind::RightSemi,
        JoinKind::Anti => JoinKind::RightAnti,
        _ => {
            return Ok(LogicalPlan::Join {
                left,
                right,
                kind,
                on,
                filter,
                schema,
            })
        }
    };
    if on.is_empty() || estimate(&right).rows < SWAP_FACTOR * estimate(&left).rows {
        return Ok(LogicalPlan::Join {
            left,
            right,
            kind,
            on,
            filter,
            schema,
        });
    }
    // The filter sees left ++ right; after the swap it sees right ++ left.
    let (nl, nr) = (left.schema().fields().len(), right.schema().fields().len());
    let filter = filter.map(|f| f.remap_columns(&|c| if c < nl { nr + c } else { c - nl }));
    let on = on.into_iter().map(|(l, r)| (r, l)).collect();
    Ok(LogicalPlan::join(*right, *left, swapped_kind, on, filter))
}
