//! WITH RECURSIVE: `t AS (seed UNION [ALL] step)` where the step reads `t`.
//! The seed is bound first and gives the columns' types; inside the step
//! `t` is a work table (the rows of the last iteration); the CTE becomes a
//! scan of a `RecursiveCte`, which the session computes by running the step
//! until it yields no rows (see catalog/recursive.rs for why).

use std::sync::Arc;

use arrow::datatypes::{Field, Schema};
use sqlparser::ast::{self, SetExpr, SetOperator, SetQuantifier};

use super::binder::{cte_column_names, Binder, Bound};
use super::from::scan_of;
use super::location_of;
use crate::catalog::{RecursiveCte, TableProvider, WorkTable};
use crate::error::{QuarryError, Result};
use crate::plan::{Expr, LogicalPlan};

impl Binder<'_> {
    /// One query of a WITH RECURSIVE clause: its column names and plan.
    pub(super) fn bind_recursive_cte(&self, cte: &ast::Cte) -> Result<(Vec<String>, LogicalPlan)> {
        let name = cte.alias.name.value.as_str();
        let q = &cte.query;
        let SetExpr::SetOperation {
            op: SetOperator::Union,
            left,
            right,
            set_quantifier,
        } = q.body.as_ref()
        else {
            // No UNION: an ordinary WITH query, which may not name itself.
            let bound = self.defining_self(name, || self.bind_query(q))?;
            return Ok((cte_column_names(cte, bound.scope.names())?, bound.plan));
        };
        let at = location_of(cte.alias.name.span);
        let seed = self.defining_self(name, || self.bind_set_side(left))?;
        let names = cte_column_names(cte, seed.scope.names())?;
        let seed_schema = seed.plan.schema();
        // The columns have the seed's types (as in DuckDB, the step's
        // values are cast to them); every one may hold NULL.
        let fields: Vec<Field> = names
            .iter()
            .zip(seed_schema.fields())
            .map(|(n, f)| Field::new(n, f.data_type().clone(), true))
            .collect();
        let work = Arc::new(WorkTable::new(Arc::new(Schema::new(fields))));
        self.ctes.borrow_mut().push(Default::default());
        self.add_cte(
            name,
            scan_of(name, work.clone(), Some(name)).plan,
            names.clone(),
        );
        let step = self.bind_set_side(right);
        self.ctes.borrow_mut().pop();
        let step = step?;
        if !reads_work_table(&step.plan, &work) {
            // Not recursive after all: a plain UNION.
            let bound = self.defining_self(name, || self.bind_query(q))?;
            return Ok((cte_column_names(cte, bound.scope.names())?, bound.plan));
        }
        if q.order_by.is_some() || q.limit_clause.is_some() {
            return Err(QuarryError::plan_at(
                format!("ORDER BY and LIMIT are not allowed on recursive query '{name}'"),
                at,
            ));
        }
        let distinct = match set_quantifier {
            SetQuantifier::All => false,
            SetQuantifier::Distinct | SetQuantifier::None => true,
            other => {
                return Err(QuarryError::plan_at(
                    format!("UNION {other} is not supported in recursive query '{name}'"),
                    at,
                ))
            }
        };
        let width = names.len();
        let step_width = step.plan.schema().fields().len();
        if step_width != width {
            return Err(QuarryError::plan_at(
                format!(
                    "the recursive part of '{name}' has {step_width} columns, its first part {width}"
                ),
                at,
            ));
        }
        let schema = work.schema();
        let seed = cast_to(seed, &schema)?;
        let step = cast_to(step, &schema)?;
        let cte = RecursiveCte::new(name, seed, step, work, distinct);
        Ok((names, scan_of(name, Arc::new(cte), Some(name)).plan))
    }

    /// Binds with `name` marked as being defined: a reference to it that no
    /// table answers is an error that says so.
    pub(super) fn defining_self<T>(&self, name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        self.defining.borrow_mut().push(name.to_string());
        let result = f();
        self.defining.borrow_mut().pop();
        result
    }
}

/// Whether `plan` (or a recursive CTE inside it) scans `work`.
pub(crate) fn reads_work_table(plan: &LogicalPlan, work: &Arc<WorkTable>) -> bool {
    let mut found = false;
    plan.visit_scans(&mut |s| {
        if let Some(w) = s.provider.as_work_table() {
            found |= std::ptr::eq(w, work.as_ref());
        }
        if let Some(r) = s.provider.as_recursive() {
            found |= reads_work_table(&r.seed, work) || reads_work_table(&r.step, work);
        }
    });
    found
}

/// `bound`'s rows with `schema`'s column types and names.
fn cast_to(bound: Bound, schema: &Schema) -> Result<LogicalPlan> {
    let input = bound.plan.schema();
    let exprs = schema
        .fields()
        .iter()
        .zip(input.fields())
        .enumerate()
        .map(|(i, (to, from))| {
            let c = Expr::Column(i);
            if to.data_type() == from.data_type() {
                c
            } else {
                c.cast(to.data_type().clone())
            }
        })
        .collect();
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    LogicalPlan::project(bound.plan, exprs, &names)
}
