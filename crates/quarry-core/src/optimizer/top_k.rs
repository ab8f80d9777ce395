//! ORDER BY … LIMIT k becomes a top-k sort that keeps only k rows (plus the
//! offset) per partition instead of sorting everything.

use crate::plan::LogicalPlan;

pub fn sort_limit_to_top_k(plan: LogicalPlan) -> LogicalPlan {
    let plan = super::map_inputs(plan, &mut |p| Ok(sort_limit_to_top_k(p)))
        .unwrap_or_else(|_| unreachable!("the closure cannot fail"));
    match plan {
        LogicalPlan::Limit {
            input,
            skip,
            fetch: Some(n),
        } => match *input {
            LogicalPlan::Sort {
                input: sorted,
                keys,
                ..
            } => LogicalPlan::Limit {
                input: Box::new(LogicalPlan::Sort {
                    input: sorted,
                    keys,
                    fetch: Some(skip + n),
                }),
                skip,
                fetch: Some(n),
            },
            other => LogicalPlan::Limit {
                input: Box::new(other),
                skip,
                fetch: Some(n),
            },
        },
        other => other,
    }
}
