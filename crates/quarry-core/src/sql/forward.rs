//! Correlation more than one level up (`… WHERE EXISTS (SELECT … FROM b
//! WHERE EXISTS (SELECT … FROM c WHERE c.x = a.x))`): the middle query
//! carries the outer query's column down as a column of its own, which the
//! inner one then reads as its outer column, and the general unnesting
//! plans the middle query per distinct value of it.
//!
//! The binder learns which columns to carry by trying: a name that no
//! scope around a subquery has, but some query of the statement does, is
//! noted; the statement is then bound again with those columns carried by
//! every query bound inside one that has them (and such queries take the
//! general unnesting).

use sqlparser::ast;

use super::binder::{Binder, Bound};
use super::lateral::OuterScope;
use super::scope::{Scope, ScopeColumn};
use crate::catalog::Catalog;
use crate::error::Result;
use crate::plan::{Expr, LogicalPlan};

/// A column to carry down: (qualifier as written, name).
pub(super) type FarColumn = (Option<String>, String);

/// Binds a statement's query, again with the far columns the last try
/// noted carried down, until it binds or no new one is noted.
pub fn bind_statement_query(catalog: &Catalog, q: &ast::Query) -> Result<Bound> {
    let mut carried: Vec<FarColumn> = Vec::new();
    loop {
        let binder = Binder::new(catalog);
        *binder.carried.borrow_mut() = carried.clone();
        let bound = binder.bind_query(q);
        let noted: Vec<FarColumn> = binder
            .far_columns
            .take()
            .into_iter()
            .filter(|c| !carried.contains(c))
            .collect();
        if bound.is_ok() || noted.is_empty() {
            return bound;
        }
        carried.extend(noted);
    }
}

fn names(c: &ScopeColumn, far: &FarColumn) -> bool {
    c.name.eq_ignore_ascii_case(&far.1)
        && match &far.0 {
            None => !c.hidden,
            Some(q) => c
                .qualifier
                .as_deref()
                .is_some_and(|cq| cq.eq_ignore_ascii_case(q)),
        }
}

impl Binder<'_> {
    /// Notes `qualifier.name`, found in no scope around an expression, when
    /// a query of the statement has it.
    pub(super) fn note_far_column(&self, qualifier: Option<&str>, name: &str) {
        let far = (qualifier.map(str::to_string), name.to_string());
        let known = self
            .scopes_seen
            .borrow()
            .iter()
            .any(|s| s.columns.iter().any(|c| names(c, &far)));
        let mut noted = self.far_columns.borrow_mut();
        if known && !noted.contains(&far) {
            noted.push(far);
        }
    }

    /// Whether queries bound inside `outer` carry some of its columns down
    /// (and so take the general unnesting).
    pub(super) fn carries_from(&self, outer: &Scope) -> bool {
        let carried = self.carried.borrow();
        outer
            .columns
            .iter()
            .any(|c| carried.iter().any(|far| names(c, far)))
    }

    /// `from` (a query's FROM, bound inside `outer`) with the columns of
    /// `outer` to carry down appended, hidden.
    pub(super) fn carry_down(&self, from: Bound, outer: &OuterScope) -> Result<Bound> {
        let carried = self.carried.borrow();
        let picked: Vec<usize> = (0..outer.scope.columns.len())
            .filter(|&k| {
                carried
                    .iter()
                    .any(|far| names(&outer.scope.columns[k], far))
            })
            .collect();
        carry_columns(from, outer, &picked)
    }
}

/// `from` with the columns `picked` of `outer` appended as its own,
/// hidden and forwarded (reachable by their qualified names, and by their
/// names from the subqueries inside).
pub(super) fn carry_columns(from: Bound, outer: &OuterScope, picked: &[usize]) -> Result<Bound> {
    if picked.is_empty() {
        return Ok(from);
    }
    let Bound { plan, mut scope } = from;
    let schema = plan.schema();
    let width = schema.fields().len();
    let mut exprs: Vec<Expr> = (0..width).map(Expr::Column).collect();
    let mut column_names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    for &k in picked {
        let c = &outer.scope.columns[k];
        exprs.push(Expr::OuterColumn {
            index: k,
            data_type: outer.schema.field(k).data_type().clone(),
        });
        column_names.push(format!("__outer_{}", c.name));
        scope.columns.push(ScopeColumn {
            qualifier: c.qualifier.clone(),
            name: c.name.clone(),
            hidden: true,
            forwarded: true,
            former_name: None,
        });
    }
    let plan = LogicalPlan::project(plan, exprs, &column_names)?;
    Ok(Bound { plan, scope })
}
