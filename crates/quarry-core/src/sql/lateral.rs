//! LATERAL: a derived table in FROM that reads the columns of the items
//! before it (`FROM t, LATERAL (SELECT … WHERE x = t.a)`, `JOIN LATERAL
//! (…) ON …`, `LEFT JOIN LATERAL (…) ON …`; as in DuckDB the keyword may be
//! left out). It is bound with those columns as outer columns and planned
//! by the general unnesting (unnest.rs): computed once per distinct value
//! of the columns it reads, then joined to its left side on them.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use sqlparser::ast::TableFactor;

use super::binder::{Binder, Bound};
use super::scope::Scope;
use super::unnest::{join_dependent, reads_outer};
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

    /// A FROM item after `left`: a derived table sees `left`'s columns.
    pub(super) fn bind_factor_after(
        &self,
        tf: &TableFactor,
        left: Option<&Bound>,
    ) -> Result<Bound> {
        match (tf, left) {
            // (a table function's arguments may read them too)
            (
                TableFactor::Derived { .. }
                | TableFactor::Table { args: Some(_), .. }
                | TableFactor::Function { .. },
                Some(left),
            ) => {
                let outer = OuterScope {
                    scope: left.scope.clone(),
                    schema: left.plan.schema(),
                };
                self.with_correlated(Some(Arc::new(outer)), || self.bind_table_factor(tf))
            }
            _ => self.bind_table_factor(tf),
        }
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
            Some(c) => super::binder::split_join_condition(c, nl),
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
