//! A projection over a projection that only picks or renames columns is
//! one projection (join reordering and projection push-down leave such
//! pairs behind).

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
        other => Ok(LogicalPlan::Project {
            input: Box::new(other),
            exprs,
            schema,
        }),
    }
}
