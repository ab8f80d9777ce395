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

    /// The forwarded column named `name`, if one is (or several copies of
    /// one: the nearest, first).
    pub fn forwarded(&self, name: &str) -> Option<usize> {
        let found: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.forwarded && c.name.eq_ignore_ascii_case(name))
            .map(|(i, _)| i)
            .collect();
        match self.nearest(&found) {
            [i] => Some(*i),
            _ => None,
        }
    }

    /// Of columns that match a name: copies of one forwarded column (the
    /// same qualifier and name, carried into several FROM items, or seen
    /// both in an item and in the query around) count once, as the first,
    /// which is the nearest.
    fn nearest<'m>(&self, matches: &'m [usize]) -> &'m [usize] {
        if matches.len() < 2 || matches.iter().any(|&i| !self.columns[i].forwarded) {
            return matches;
        }
        let first = &self.columns[matches[0]];
        let same = |c: &ScopeColumn| {
            c.name.eq_ignore_ascii_case(&first.name)
                && match (&c.qualifier, &first.qualifier) {
                    (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                    (a, b) => a == b,
                }
        };
        if matches.iter().all(|&i| same(&self.columns[i])) {
            return &matches[..1];
        }
        matches
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
        // the query's own columns hide forwarded ones of the same name
        let own: Vec<usize> = matches
            .iter()
            .copied()
            .filter(|&i| !self.columns[i].forwarded)
            .collect();
        let matches = if own.is_empty() { matches } else { own };
        match self.nearest(&matches) {
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

    /// The same columns, qualified by `alias` (but those forwarded from
    /// the query around, which keep their table's name).
    pub fn requalify(&self, alias: &str) -> Scope {
        let mut scope = self.clone();
        for c in scope.columns.iter_mut().filter(|c| !c.forwarded) {
            c.qualifier = Some(alias.to_string());
        }
        scope
    }
}
