//! Filter push-down into scans: the conjuncts of a filter right above a scan
//! are handed to the scan, which uses them to skip row groups by their
//! min/max statistics. The filter stays, since pruning is per row group.

use crate::plan::{Expr, LogicalPlan};

pub fn push_filters_into_scans(plan: LogicalPlan) -> LogicalPlan {
    let plan = super::map_inputs(plan, &mut |p| Ok(push_filters_into_scans(p)))
        .unwrap_or_else(|_| unreachable!("the closure cannot fail"));
    match plan {
        LogicalPlan::Filter { input, predicate } => match *input {
            LogicalPlan::Scan(mut scan) => {
                scan.filters = Expr::split_conjunction(predicate.clone());
                LogicalPlan::Filter {
                    input: Box::new(LogicalPlan::Scan(scan)),
                    predicate,
                }
            }
            other => LogicalPlan::Filter {
                input: Box::new(other),
                predicate,
            },
        },
        other => other,
    }
}
