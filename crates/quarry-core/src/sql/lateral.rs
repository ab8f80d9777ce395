//! LATERAL: a derived table in FROM that reads the columns of the items
//! before it (`FROM t, LATERAL (SELECT … WHERE x = t.a)`, `JOIN LATERAL
//! (…) ON …`, `LEFT JOIN LATERAL (…) ON …`; as in DuckDB the keyword may be
//! left out). It is bound with those columns as outer columns and planned
//! by the general unnesting (unnest.rs): computed once per distinct value
//! of the columns it reads, then joined to its left side on them.

use std::sync::Arc;

use arrow::datatypes::{FieldRef, Schema, SchemaRef};

use super::binder::{Binder, Bound};
use super::forward::carry_columns;
use super::scope::{Scope, ScopeColumn};
use super::unnest::{join_dependent, map_plan_exprs, reads_outer, visit_plan_exprs};
use crate::error::{QuarryError, Result};
use crate::plan::{Expr, JoinKind, LogicalPlan};

/// The query whose columns the query being bound may read anywhere (a
/// LATERAL subquery's left side, the query around a subquery that the
/// general unnesting plans).
pub struct OuterScope {
    pub scope: Scope,
    pub schema: SchemaRef,
}

impl Binder<'_> {
    /// Binds `f` with `outer`'s columns readable anywhere in it (None: with
    /// none, as in a subquery of an expression, which has its own outer).
    pub(super) fn with_correlated<T>(
        &self,
        outer: Option<Arc<OuterScope>>,
        f: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        let saved = self.correlated.replace(outer);
        let result = f();
        *self.correlated.borrow_mut() = saved;
        result
    }

    /// `left` joined with a `right` that reads `left`'s columns; `condition`
    /// is over left ++ right columns.
    pub(super) fn lateral_join(
        &self,
        left: Bound,
        right: Bound,
        kind: JoinKind,
        condition: Option<Expr>,
    ) -> Result<Bound> {
        if !matches!(kind, JoinKind::Inner | JoinKind::Left) {
            return Err(QuarryError::plan(
                "a LATERAL subquery or table function can only be joined by an inner or LEFT join",
            ));
        }
        let (nl, nr) = (left.scope.columns.len(), right.plan.schema().fields().len());
        if kind == JoinKind::Inner {
            if let Some(series) = series_over(&left.plan, &right.plan)? {
                // (the series' rows are left ++ value, as the join's)
                let plan = match condition {
                    Some(predicate) => LogicalPlan::Filter {
                        input: Box::new(series),
                        predicate,
                    },
                    None => series,
                };
                let mut scope = left.scope;
                scope.columns.extend(right.scope.columns);
                return Ok(Bound { plan, scope });
            }
        }
        let (on, filter) = match condition {
            Some(c) => super::from::split_join_condition(c, nl),
            None => (vec![], None),
        };
        let joined = join_dependent(left.plan, right.plan, kind, on, filter)?;
        let schema = joined.schema();
        let names: Vec<String> = schema.fields()[..nl + nr]
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let plan = LogicalPlan::project(joined, (0..nl + nr).map(Expr::Column).collect(), &names)?;
        let mut scope = left.scope;
        scope.columns.extend(right.scope.columns);
        Ok(Bound { plan, scope })
    }
}

/// What a FROM item after `near` may read besides its own columns:
/// `near`'s, then those of `far` (the query around, with the items before
/// `near`'s join tree, if any), whose names yield to `near`'s.
pub(super) fn layered(near: &Bound, far: Option<&OuterScope>) -> Arc<OuterScope> {
    let mut scope = near.scope.clone();
    let mut fields: Vec<FieldRef> = near.plan.schema().fields().iter().cloned().collect();
    if let Some(far) = far {
        scope
            .columns
            .extend(far.scope.columns.iter().map(|c| ScopeColumn {
                forwarded: true,
                ..c.clone()
            }));
        fields.extend(far.schema.fields().iter().cloned());
    }
    Arc::new(OuterScope {
        scope,
        schema: Arc::new(Schema::new(fields)),
    })
}

/// `left` and `right`, where `right` was bound reading `layered(left,
/// far)`: the columns of `far` that `right` reads are carried into `left`
/// (forward.rs) and `right` reads them there, so that it reads `left`
/// alone (a LATERAL item) or nothing, and `left` reads `far`.
pub(super) fn absorb_far(
    left: Bound,
    right: Bound,
    far: Option<&OuterScope>,
) -> Result<(Bound, Bound)> {
    let Some(far) = far else {
        return Ok((left, right));
    };
    let nl = left.scope.columns.len();
    let mut read = Vec::new();
    visit_plan_exprs(&right.plan, &mut |e| {
        e.visit(&mut |x| match x {
            Expr::OuterColumn { index, .. } if *index >= nl => read.push(index - nl),
            _ => {}
        })
    });
    read.sort_unstable();
    read.dedup();
    if read.is_empty() {
        return Ok((left, right));
    }
    let left = carry_columns(left, far, &read)?;
    let plan = map_plan_exprs(right.plan, &mut |e| {
        e.transform_up(&mut |x| {
            Ok(match x {
                Expr::OuterColumn { index, data_type } if index >= nl => {
                    let at = read.iter().position(|&k| k == index - nl).ok_or_else(|| {
                        QuarryError::plan("internal error: a far column was not carried")
                    })?;
                    Expr::OuterColumn {
                        index: nl + at,
                        data_type,
                    }
                }
                other => other,
            })
        })
    })?;
    Ok((
        left,
        Bound {
            plan,
            scope: right.scope,
        },
    ))
}

/// `FROM left, generate_series(…)` whose arguments read only `left`'s
/// columns: the series straight over `left`'s rows, rather than per
/// distinct value of those columns joined back.
fn series_over(left: &LogicalPlan, right: &LogicalPlan) -> Result<Option<LogicalPlan>> {
    let LogicalPlan::Series {
        input,
        args,
        inclusive,
        schema,
    } = right
    else {
        return Ok(None);
    };
    if !matches!(input.as_ref(), LogicalPlan::Values { schema, batches }
        if schema.fields().is_empty() && batches.iter().map(|b| b.num_rows()).sum::<usize>() == 1)
    {
        return Ok(None);
    }
    let args = args
        .iter()
        .map(|a| {
            a.clone().transform_up(&mut |x| {
                Ok(match x {
                    Expr::OuterColumn { index, .. } => Expr::Column(index),
                    other => other,
                })
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let name = schema.field(0).name();
    Ok(Some(LogicalPlan::series(
        left.clone(),
        args,
        *inclusive,
        name,
    )))
}

/// Whether a bound FROM item reads the columns of the items before it.
pub(super) fn is_lateral(b: &Bound) -> bool {
    reads_outer(&b.plan)
}
