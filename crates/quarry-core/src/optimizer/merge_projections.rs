//! A projection over a projection that only picks or renames columns is
//! one projection (join reordering and projection push-down leave such
//! pairs behind); so is one that picks or renames the columns of the
//! projection under it, each computed column at most once (the final
//! SELECT list over the averages of `average_sums`).

use super::map_inputs;
use crate::error::Result;
use crate::plan::{Expr, LogicalPlan};

pub fn merge_projections(plan: LogicalPlan) -> Result<LogicalPlan> {
    let plan = map_inputs(plan, &mut merge_projections)?;
    let LogicalPlan::Project {
        input,
        exprs,
        schema,
    } = plan
    else {
        return Ok(plan);
    };
    match *input {
        LogicalPlan::Project {
            input: inner_input,
            exprs: inner,
            ..
        } if inner
            .iter()
            .all(|e| matches!(e, Expr::Column(_) | Expr::Literal(_))) =>
        {
            let exprs = exprs
                .into_iter()
                .map(|e| {
                    e.transform_up(&mut |x| {
                        Ok(match x {
                            Expr::Column(i) => inner[i].clone(),
                            other => other,
                        })
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(LogicalPlan::Project {
                input: inner_input,
                exprs,
                schema,
            })
        }
        LogicalPlan::Project {
            input: inner_input,
            exprs: inner,
            ..
        } if picks_each_once(&exprs, &inner) => {
            let exprs = exprs
                .iter()
                .map(|e| match e {
                    Expr::Column(i) => inner[*i].clone(),
                    other => other.clone(),
                })
                .collect();
            Ok(LogicalPlan::Project {
                input: inner_input,
                exprs,
                schema,
            })
        }
        other => Ok(LogicalPlan::Project {
            input: Box::new(other),
            exprs,
            schema,
        }),
    }
}

/// Whether `outer` only picks columns of `inner`, and none that `inner`
/// computes (rather than picks) more than once.
fn picks_each_once(outer: &[Expr], inner: &[Expr]) -> bool {
    let mut picked = vec![0usize; inner.len()];
    for e in outer {
        match e {
            Expr::Column(i) if *i < inner.len() => picked[*i] += 1,
            _ => return false,
        }
    }
    picked
        .iter()
        .zip(inner)
        .all(|(&n, e)| n <= 1 || matches!(e, Expr::Column(_) | Expr::Literal(_)))
}
