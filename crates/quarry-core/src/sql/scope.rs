//! The names visible while binding: one entry per column of the plan being
//! built, with the table name or alias that qualifies it.

use crate::catalog::closest;
use crate::error::{Location, QuarryError, Result};

#[derive(Debug, Clone)]
pub struct ScopeColumn {
    pub qualifier: Option<String>,
    pub name: String,
    /// Reachable only by `qualifier.name` and not part of `*` (the right
    /// column of a JOIN … USING).
    pub hidden: bool,
    /// A column of the enclosing query carried into this one for a
    /// subquery that reads it from two levels down (hidden too; a nested
    /// subquery may name it unqualified).
    pub forwarded: bool,
    /// The name the column had before an alias renamed it, still
    /// reachable (as in DuckDB: `range` of `FROM range(3) AS r`).
    pub former_name: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub columns: Vec<ScopeColumn>,
}

impl Scope {
    pub fn new(qualifier: Option<&str>, names: impl IntoIterator<Item = String>) -> Self {
        Scope {
            columns: names
                .into_iter()
                .map(|name| ScopeColumn {
                    qualifier: qualifier.map(|q| q.to_string()),
                    name,
                    hidden: false,
                    forwarded: false,
                    former_name: None,
                })
                .collect(),
        }
    }

    /// The forwarded column named `name`, if exactly one is.
    pub fn forwarded(&self, name: &str) -> Option<usize> {
        let mut found = self
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.forwarded && c.name.eq_ignore_ascii_case(name));
        match (found.next(), found.next()) {
            (Some((i, _)), None) => Some(i),
            _ => None,
        }
    }

    /// Finds `qualifier.name` (or `name`); names are case-insensitive.
    pub fn resolve(
        &self,
        qualifier: Option<&str>,
        name: &str,
        at: Option<Location>,
    ) -> Result<usize> {
        let matches: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                (c.name.eq_ignore_ascii_case(name)
                    || c.former_name
                        .as_deref()
                        .is_some_and(|f| f.eq_ignore_ascii_case(name)))
                    && match qualifier {
                        None => !c.hidden,
                        Some(q) => c
                            .qualifier
                            .as_deref()
                            .is_some_and(|cq| cq.eq_ignore_ascii_case(q)),
                    }
            })
            .map(|(i, _)| i)
            .collect();
        match matches.as_slice() {
            [i] => Ok(*i),
            [] => {
                let full = match qualifier {
                    Some(q) => format!("{q}.{name}"),
                    None => name.to_string(),
                };
                if let Some(q) = qualifier {
                    if !self.columns.iter().any(|c| {
                        c.qualifier
                            .as_deref()
                            .is_some_and(|cq| cq.eq_ignore_ascii_case(q))
                    }) {
                        return Err(QuarryError::plan_at(
                            format!(
                                "column '{full}' not found: no table named '{q}' in this query"
                            ),
                            at,
                        ));
                    }
                }
                let hint = closest(name, self.columns.iter().map(|c| c.name.as_str()))
                    .map(|c| format!(", did you mean '{c}'?"))
                    .unwrap_or_default();
                Err(QuarryError::plan_at(
                    format!("column '{full}' not found{hint}"),
                    at,
                ))
            }
            _ => Err(QuarryError::plan_at(
                format!("column reference '{name}' is ambiguous: qualify it with a table name"),
                at,
            )),
        }
    }

    /// Whether some column is qualified by `q`.
    pub fn has_qualifier(&self, q: &str) -> bool {
        self.columns.iter().any(|c| {
            c.qualifier
                .as_deref()
                .is_some_and(|cq| cq.eq_ignore_ascii_case(q))
        })
    }

    pub fn names(&self) -> Vec<String> {
        self.columns.iter().map(|c| c.name.clone()).collect()
    }

    /// The same columns, all qualified by `alias`.
    pub fn requalify(&self, alias: &str) -> Scope {
        let mut scope = Scope::new(Some(alias), self.names());
        for (c, old) in scope.columns.iter_mut().zip(&self.columns) {
            c.former_name = old.former_name.clone();
        }
        scope
    }
}
