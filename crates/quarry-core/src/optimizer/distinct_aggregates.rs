//! `GROUP BY g` with aggregates that are all DISTINCT over one argument
//! `x` (`count(DISTINCT ps_suppkey)`, TPC-H Q16) becomes two aggregations:
//! `GROUP BY g, x` to drop the duplicates, then the plain aggregates over
//! `x` by `g`. Both are ordinary hash aggregates, split into partial and
//! final phases across partitions, instead of one set of values per group.
//!
//! Sound because count, sum, avg, min, max, string_agg, the quantiles and
//! approx_count_distinct of the distinct values of `x` are those aggregates
//! over one row per (g, x); a NULL `x` forms its own
//! group in the first step and is skipped by the second, as DISTINCT does.

use super::map_inputs;
use crate::error::Result;
use crate::plan::{AggFunc, AggregateExpr, Expr, LogicalPlan};

pub fn split_distinct_aggregates(plan: LogicalPlan) -> Result<LogicalPlan> {
    let plan = map_inputs(plan, &mut split_distinct_aggregates)?;
    let LogicalPlan::Aggregate {
        input,
        group,
        aggs,
        schema,
    } = plan
    else {
        return Ok(plan);
    };
    let arg = match aggs.first() {
        Some(AggregateExpr {
            arg: Some(x),
            distinct: true,
            ..
        }) => x.clone(),
        _ => {
            return Ok(LogicalPlan::Aggregate {
                input,
                group,
                aggs,
                schema,
            })
        }
    };
    let splittable = aggs.iter().all(|a| {
        a.distinct
            && a.arg.as_ref() == Some(&arg)
            && matches!(
                a.func,
                AggFunc::Count
                    | AggFunc::Sum
                    | AggFunc::Avg
                    | AggFunc::Min
                    | AggFunc::Max
                    | AggFunc::StringAgg
                    | AggFunc::QuantileCont
                    | AggFunc::QuantileDisc
                    | AggFunc::ApproxCountDistinct
            )
    });
    if !splittable {
        return Ok(LogicalPlan::Aggregate {
            input,
            group,
            aggs,
            schema,
        });
    }
    let k = group.len();
    let mut names: Vec<String> = schema.fields()[..k]
        .iter()
        .map(|f| f.name().clone())
        .collect();
    names.push("distinct value".into());
    let mut inner_group = group;
    inner_group.push(arg);
    let deduped = LogicalPlan::aggregate(*input, inner_group, vec![], &names)?;
    let aggs = aggs
        .into_iter()
        .map(|a| AggregateExpr {
            func: a.func,
            arg: Some(Expr::Column(k)),
            distinct: false,
            param: a.param.clone(),
        })
        .collect();
    Ok(LogicalPlan::Aggregate {
        input: Box::new(deduped),
        group: (0..k).map(Expr::Column).collect(),
        aggs,
        schema,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optimizer::test_plans::{col, values};

    fn aggregate(aggs: Vec<AggregateExpr>) -> LogicalPlan {
        let names: Vec<String> = (0..=aggs.len()).map(|i| format!("c{i}")).collect();
        LogicalPlan::aggregate(values(&["g", "x", "y"], 10), vec![col(0)], aggs, &names).unwrap()
    }

    fn agg(func: AggFunc, arg: usize, distinct: bool) -> AggregateExpr {
        AggregateExpr {
            func,
            arg: Some(col(arg)),
            distinct,
            param: None,
        }
    }

    #[test]
    fn distinct_aggregates_of_one_argument_group_by_it_first() {
        let plan = aggregate(vec![
            agg(AggFunc::Count, 1, true),
            agg(AggFunc::Sum, 1, true),
        ]);
        let before = plan.schema();
        let out = split_distinct_aggregates(plan).unwrap();
        assert_eq!(out.schema(), before);
        let LogicalPlan::Aggregate { input, aggs, .. } = &out else {
            panic!("{out}");
        };
        assert!(aggs.iter().all(|a| !a.distinct), "{out}");
        let LogicalPlan::Aggregate { group, aggs, .. } = input.as_ref() else {
            panic!("{out}");
        };
        assert_eq!(group, &vec![col(0), col(1)]);
        assert!(aggs.is_empty());
    }

    #[test]
    fn mixed_or_two_arguments_are_left_alone() {
        for aggs in [
            vec![agg(AggFunc::Count, 1, true), agg(AggFunc::Sum, 2, false)],
            vec![agg(AggFunc::Count, 1, true), agg(AggFunc::Count, 2, true)],
            vec![agg(AggFunc::Sum, 1, false)],
        ] {
            let out = split_distinct_aggregates(aggregate(aggs)).unwrap();
            let LogicalPlan::Aggregate { input, .. } = &out else {
                panic!("{out}");
            };
            assert!(
                !matches!(input.as_ref(), LogicalPlan::Aggregate { .. }),
                "{out}"
            );
        }
    }
}
