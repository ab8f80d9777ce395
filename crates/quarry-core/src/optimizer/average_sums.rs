//! An `avg(x)` next to a `sum(x)` in one aggregate is computed from that
//! sum and a count, `average_of(sum(x), count(x))`, instead of summing x a
//! second time (TPC-H Q1 asks for the sum and the average of both
//! l_quantity and l_extendedprice). The count of a column without NULLs
//! is `count(*)`, which the aggregate may already have.
//!
//! Only sums that `avg` itself adds up the same way are shared: decimal
//! (both sum into DECIMAL(38, s) and fail on the same overflow) and double
//! (the same additions in the same order). An integer avg sums into a
//! decimal where sum(x) is a BIGINT that can overflow, so it stays.

use std::sync::Arc;

use arrow::datatypes::{DataType, Schema};

use super::map_inputs;
use crate::error::Result;
use crate::plan::{AggFunc, AggregateExpr, Expr, LogicalPlan, ScalarFunc};

pub fn share_average_sums(plan: LogicalPlan) -> Result<LogicalPlan> {
    let plan = map_inputs(plan, &mut share_average_sums)?;
    let LogicalPlan::Aggregate {
        input,
        group,
        aggs,
        schema,
    } = plan
    else {
        return Ok(plan);
    };
    let in_schema = input.schema();
    if !aggs
        .iter()
        .any(|a| summed_argument(a, &aggs, &in_schema).is_some())
    {
        return Ok(LogicalPlan::Aggregate {
            input,
            group,
            aggs,
            schema,
        });
    }
    let keys = group.len();
    // The new aggregates, each once, and per old output column what
    // computes it from the new aggregate's columns.
    let mut shared: Vec<AggregateExpr> = Vec::new();
    let mut outputs: Vec<Expr> = (0..keys).map(Expr::Column).collect();
    for a in &aggs {
        if let Some(x) = summed_argument(a, &aggs, &in_schema) {
            let count = counting(x, &in_schema);
            let sum = AggregateExpr {
                func: AggFunc::Sum,
                arg: Some(x.clone()),
                distinct: false,
                param: None,
            };
            outputs.push(Expr::Function {
                func: ScalarFunc::AverageOf,
                args: vec![
                    Expr::Column(keys + position(&mut shared, sum)),
                    Expr::Column(keys + position(&mut shared, count)),
                ],
                data_type: DataType::Float64,
            });
        } else {
            let a = match &a.arg {
                Some(x) if a.func == AggFunc::Count && !a.distinct => counting(x, &in_schema),
                _ => a.clone(),
            };
            outputs.push(Expr::Column(keys + position(&mut shared, a)));
        }
    }
    let names: Vec<String> = schema.fields()[..keys]
        .iter()
        .map(|f| f.name().clone())
        .chain(shared.iter().map(|a| a.display(&in_schema).to_string()))
        .collect();
    let aggregate = LogicalPlan::aggregate(*input, group, shared, &names)?;
    Ok(LogicalPlan::Project {
        input: Box::new(aggregate),
        exprs: outputs,
        schema: Arc::new(Schema::new(schema.fields().clone())),
    })
}

/// The argument of `a` if it is an `avg` whose argument the aggregate also
/// sums (see the module's note for the types).
fn summed_argument<'a>(
    a: &'a AggregateExpr,
    aggs: &[AggregateExpr],
    input: &Schema,
) -> Option<&'a Expr> {
    let x = a.arg.as_ref()?;
    let summed_alike = matches!(
        x.data_type(input),
        Ok(DataType::Decimal128(_, _) | DataType::Float64)
    );
    let shares = a.func == AggFunc::Avg
        && !a.distinct
        && summed_alike
        && aggs
            .iter()
            .any(|s| s.func == AggFunc::Sum && !s.distinct && s.arg.as_ref() == Some(x));
    shares.then_some(x)
}

/// `count(x)`, or `count(*)` when x cannot be NULL.
fn counting(x: &Expr, input: &Schema) -> AggregateExpr {
    if x.nullable(input) {
        AggregateExpr {
            func: AggFunc::Count,
            arg: Some(x.clone()),
            distinct: false,
            param: None,
        }
    } else {
        AggregateExpr {
            func: AggFunc::CountStar,
            arg: None,
            distinct: false,
            param: None,
        }
    }
}

/// The index of `agg` among `aggs`, added at the end if it is not there.
fn position(aggs: &mut Vec<AggregateExpr>, agg: AggregateExpr) -> usize {
    match aggs.iter().position(|a| *a == agg) {
        Some(i) => i,
        None => {
            aggs.push(agg);
            aggs.len() - 1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::Field;

    fn agg(func: AggFunc, arg: Option<usize>) -> AggregateExpr {
        AggregateExpr {
            func,
            arg: arg.map(Expr::Column),
            distinct: false,
            param: None,
        }
    }

    /// An aggregate over (d DECIMAL NOT NULL, n DECIMAL NULL, i BIGINT).
    fn aggregate(aggs: Vec<AggregateExpr>) -> LogicalPlan {
        let input = LogicalPlan::Values {
            schema: Arc::new(Schema::new(vec![
                Field::new("d", DataType::Decimal128(15, 2), false),
                Field::new("n", DataType::Decimal128(15, 2), true),
                Field::new("i", DataType::Int64, false),
            ])),
            batches: vec![],
        };
        let names: Vec<String> = (0..aggs.len()).map(|i| format!("a{i}")).collect();
        LogicalPlan::aggregate(input, vec![], aggs, &names).unwrap()
    }

    fn aggs_of(plan: &LogicalPlan) -> Vec<AggregateExpr> {
        match plan {
            LogicalPlan::Project { input, .. } => aggs_of(input),
            LogicalPlan::Aggregate { aggs, .. } => aggs.clone(),
            _ => vec![],
        }
    }

    #[test]
    fn an_average_beside_its_sum_is_computed_from_it() {
        let plan = aggregate(vec![
            agg(AggFunc::Sum, Some(0)),
            agg(AggFunc::Avg, Some(0)),
            agg(AggFunc::CountStar, None),
            agg(AggFunc::Sum, Some(1)),
            agg(AggFunc::Avg, Some(1)),
        ]);
        let schema = plan.schema();
        let plan = share_average_sums(plan).unwrap();
        assert_eq!(
            plan.schema(),
            schema,
            "the output columns stay as they were"
        );
        // sum(d), count(*) (d holds no NULLs), sum(n), count(n)
        assert_eq!(
            aggs_of(&plan),
            vec![
                agg(AggFunc::Sum, Some(0)),
                agg(AggFunc::CountStar, None),
                agg(AggFunc::Sum, Some(1)),
                agg(AggFunc::Count, Some(1)),
            ]
        );
        let LogicalPlan::Project { exprs, .. } = &plan else {
            panic!("a projection computes the averages")
        };
        let average = |s, c| Expr::Function {
            func: ScalarFunc::AverageOf,
            args: vec![Expr::Column(s), Expr::Column(c)],
            data_type: DataType::Float64,
        };
        assert_eq!(exprs[1], average(0, 1));
        assert_eq!(exprs[4], average(2, 3));
    }

    #[test]
    fn averages_without_their_sum_or_of_integers_stay() {
        for aggs in [
            vec![agg(AggFunc::Avg, Some(0)), agg(AggFunc::Sum, Some(1))],
            vec![agg(AggFunc::Avg, Some(2)), agg(AggFunc::Sum, Some(2))],
        ] {
            let plan = share_average_sums(aggregate(aggs.clone())).unwrap();
            assert!(matches!(plan, LogicalPlan::Aggregate { .. }));
            assert_eq!(aggs_of(&plan), aggs);
        }
    }
}
