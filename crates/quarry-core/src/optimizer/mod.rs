//! The optimizer: a list of rules, each in its own file, applied in order.

mod average_sums;
mod build_side;
pub mod cardinality;
mod common_subexpressions;
pub(crate) mod constant_folding;
mod distinct_aggregates;
mod join_order;
mod lateral_filters;
mod magic_set;
mod merge_projections;
mod outer_join_filters;
mod projection_pushdown;
mod scan_filters;
mod semi_join_pushdown;
#[cfg(test)]
pub(crate) mod test_plans;
mod top_k;

use crate::error::Result;
use crate::plan::LogicalPlan;

pub use constant_folding::fold_expr;

pub fn optimize(plan: LogicalPlan) -> Result<LogicalPlan> {
    let plan = constant_folding::fold_plan(plan)?;
    let plan = distinct_aggregates::split_distinct_aggregates(plan)?;
    let plan = outer_join_filters::push_down_outer_join_filters(plan)?;
    let plan = lateral_filters::push_filters_below_lateral_joins(plan)?;
    let plan = join_order::reorder_joins(plan)?;
    // after join ordering has filtered the outer sides' relations, before
    // the semi joins it adds are pushed down
    let plan = magic_set::reduce_grouped_joins(plan)?;
    let plan = semi_join_pushdown::push_down_semi_joins(plan)?;
    let plan = average_sums::share_average_sums(plan)?;
    let plan = common_subexpressions::share_aggregate_subexpressions(plan)?;
    let plan = projection_pushdown::push_down_projections(plan)?;
    let plan = merge_projections::merge_projections(plan)?;
    let plan = build_side::choose_build_sides(plan)?;
    let plan = scan_filters::push_filters_into_scans(plan);
    let plan = top_k::sort_limit_to_top_k(plan);
    Ok(plan)
}

/// Rebuilds `plan` with `f` applied to each direct input.
pub(crate) fn map_inputs(
    plan: LogicalPlan,
    f: &mut dyn FnMut(LogicalPlan) -> Result<LogicalPlan>,
) -> Result<LogicalPlan> {
    let mut bx = |p: Box<LogicalPlan>| -> Result<Box<LogicalPlan>> { Ok(Box::new(f(*p)?)) };
    Ok(match plan {
        LogicalPlan::Scan(_) | LogicalPlan::Values { .. } => plan,
        LogicalPlan::Filter { input, predicate } => LogicalPlan::Filter {
            input: bx(input)?,
            predicate,
        },
        LogicalPlan::Project {
            input,
            exprs,
            schema,
        } => LogicalPlan::Project {
            input: bx(input)?,
            exprs,
            schema,
        },
        LogicalPlan::Aggregate {
            input,
            group,
            aggs,
            schema,
        } => LogicalPlan::Aggregate {
            input: bx(input)?,
            group,
            aggs,
            schema,
        },
        LogicalPlan::Sort { input, keys, fetch } => LogicalPlan::Sort {
            input: bx(input)?,
            keys,
            fetch,
        },
        LogicalPlan::Limit { input, skip, fetch } => LogicalPlan::Limit {
            input: bx(input)?,
            skip,
            fetch,
        },
        LogicalPlan::Join {
            left,
            right,
            kind,
            on,
            filter,
            schema,
        } => LogicalPlan::Join {
            left: bx(left)?,
            right: bx(right)?,
            kind,
            on,
            filter,
            schema,
        },
        LogicalPlan::Window {
            input,
            exprs,
            schema,
        } => LogicalPlan::Window {
            input: bx(input)?,
            exprs,
            schema,
        },
        LogicalPlan::Series {
            input,
            args,
            inclusive,
            schema,
        } => LogicalPlan::Series {
            input: bx(input)?,
            args,
            inclusive,
            schema,
        },
        LogicalPlan::Union { inputs, schema } => LogicalPlan::Union {
            inputs: inputs.into_iter().map(&mut *f).collect::<Result<_>>()?,
            schema,
        },
    })
}
