//! An expression that several aggregate arguments share is computed once,
//! by a projection under the aggregate: TPC-H Q1's `l_extendedprice * (1 -
//! l_discount)` is both `sum_disc_price`'s argument and part of
//! `sum_charge`'s. The largest shared expression goes first; the search
//! repeats on what is left.
//!
//! Parts of a CASE are not taken out of it: evaluated for every row, a
//! branch the CASE would have skipped could fail (a division by zero).

use std::sync::Arc;

use arrow::datatypes::Schema;

use super::map_inputs;
use crate::error::Result;
use crate::plan::{Expr, LogicalPlan};

pub fn share_aggregate_subexpressions(plan: LogicalPlan) -> Result<LogicalPlan> {
    let plan = map_inputs(plan, &mut share_aggregate_subexpressions)?;
    let LogicalPlan::Aggregate {
        input,
        group,
        mut aggs,
        schema,
    } = plan
    else {
        return Ok(plan);
    };
    let in_schema = input.schema();
    let width = in_schema.fields().len();
    let mut shared: Vec<Expr> = Vec::new();
    while let Some(common) = largest_repeated(aggs.iter().filter_map(|a| a.arg.as_ref())) {
        let column = Expr::Column(width + shared.len());
        for a in aggs.iter_mut() {
            if let Some(arg) = a.arg.take() {
                a.arg =
                    Some(arg.transform_down(&mut |e| Ok((e == &common).then(|| column.clone())))?);
            }
        }
        shared.push(common);
    }
    if shared.is_empty() {
        return Ok(LogicalPlan::Aggregate {
            input,
            group,
            aggs,
            schema,
        });
    }
    // the input's columns, then the shared expressions
    let mut fields: Vec<_> = in_schema.fields().iter().cloned().collect();
    for (k, e) in shared.iter().enumerate() {
        fields.push(Arc::new(e.to_field(&format!("shared{k}"), &in_schema)?));
    }
    let mut exprs: Vec<Expr> = (0..width).map(Expr::Column).collect();
    exprs.extend(shared);
    let project = LogicalPlan::Project {
        input,
        exprs,
        schema: Arc::new(Schema::new(fields)),
    };
    Ok(LogicalPlan::Aggregate {
        input: Box::new(project),
        group,
        aggs,
        schema,
    })
}

/// The largest expression (by nodes) that occurs at least twice among
/// `exprs`, outside CASE branches; columns and literals do not count.
fn largest_repeated<'a>(exprs: impl Iterator<Item = &'a Expr>) -> Option<Expr> {
    let mut found: Vec<&Expr> = Vec::new();
    for e in exprs {
        candidates(e, &mut found);
    }
    let mut best: Option<(&Expr, usize)> = None;
    for (i, e) in found.iter().enumerate() {
        if !found[i + 1..].contains(e) {
            continue;
        }
        let size = size_of(e);
        if best.is_none_or(|(_, s)| size > s) {
            best = Some((e, size));
        }
    }
    best.map(|(e, _)| e.clone())
}

fn candidates<'a>(e: &'a Expr, out: &mut Vec<&'a Expr>) {
    match e {
        Expr::Column(_) | Expr::Literal(_) => return,
        Expr::Aggregate(_)
        | Expr::Window(_)
        | Expr::OuterColumn { .. }
        | Expr::SubqueryRef { .. } => return,
        _ => out.push(e),
    }
    if let Expr::Case { .. } = e {
        return;
    }
    for child in e.children() {
        candidates(child, out);
    }
}

fn size_of(e: &Expr) -> usize {
    let mut n = 0;
    e.visit(&mut |_| n += 1);
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optimizer::test_plans::{col, values};
    use crate::plan::{AggFunc, AggregateExpr, BinaryOp};

    fn sum(arg: Expr) -> AggregateExpr {
        AggregateExpr {
            func: AggFunc::Sum,
            arg: Some(arg),
            distinct: false,
            param: None,
        }
    }

    fn mul(a: Expr, b: Expr) -> Expr {
        Expr::binary(BinaryOp::Multiply, a, b)
    }

    fn sub(a: Expr, b: Expr) -> Expr {
        Expr::binary(BinaryOp::Minus, a, b)
    }

    #[test]
    fn the_largest_shared_argument_part_is_computed_once_below() {
        // sum(p * (1 - d)), sum(p * (1 - d) * t), sum(d): Q1's shape
        let disc = || mul(col(0), sub(Expr::lit(1i64.into()), col(1)));
        let aggs = vec![sum(disc()), sum(mul(disc(), col(2))), sum(col(1))];
        let names: Vec<String> = (0..3).map(|i| format!("s{i}")).collect();
        let plan =
            LogicalPlan::aggregate(values(&["p", "d", "t"], 10), vec![], aggs, &names).unwrap();
        let before = plan.schema();
        let out = share_aggregate_subexpressions(plan).unwrap();
        assert_eq!(out.schema(), before);
        let LogicalPlan::Aggregate { input, aggs, .. } = &out else {
            panic!("{out}");
        };
        assert_eq!(aggs[0].arg, Some(col(3)), "{out}");
        assert_eq!(aggs[1].arg, Some(mul(col(3), col(2))), "{out}");
        assert_eq!(aggs[2].arg, Some(col(1)), "{out}");
        let LogicalPlan::Project { exprs, .. } = input.as_ref() else {
            panic!("{out}");
        };
        assert_eq!(exprs, &vec![col(0), col(1), col(2), disc()]);
    }

    #[test]
    fn nothing_shared_or_inside_a_case_leaves_the_plan_alone() {
        let ratio = || Expr::binary(BinaryOp::Divide, col(0), col(1));
        let case = Expr::Case {
            branches: vec![(
                Expr::binary(BinaryOp::NotEq, col(1), Expr::lit(0i64.into())),
                ratio(),
            )],
            else_expr: None,
            data_type: arrow::datatypes::DataType::Int64,
        };
        for aggs in [
            vec![sum(mul(col(0), col(1))), sum(sub(col(0), col(1)))],
            vec![
                sum(case.clone()),
                sum(Expr::binary(BinaryOp::Plus, case, col(0))),
            ],
        ] {
            let names: Vec<String> = (0..aggs.len()).map(|i| format!("s{i}")).collect();
            let plan =
                LogicalPlan::aggregate(values(&["a", "b"], 10), vec![], aggs, &names).unwrap();
            let out = share_aggregate_subexpressions(plan).unwrap();
            let LogicalPlan::Aggregate { input, .. } = &out else {
                panic!("{out}");
            };
            if let LogicalPlan::Project { exprs, .. } = input.as_ref() {
                // a whole CASE may be shared, never the division inside it
                assert!(!exprs.contains(&ratio()), "{out}");
            }
        }
    }
}
