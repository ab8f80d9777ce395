//! GROUPING SETS, ROLLUP and CUBE: one aggregate per grouping set, each
//! with NULL in the group columns it does not group by, their rows one
//! after another; `grouping(…)` is a constant of each set.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema};
use datafusion_common::ScalarValue;
use sqlparser::ast::{self, GroupByWithModifier};

use crate::error::{QuarryError, Result};
use crate::plan::{AggregateExpr, Expr, LogicalPlan, ScalarFunc};

/// More sets than this is surely a mistake (CUBE of 13 expressions).
const MAX_SETS: usize = 4096;

/// The grouping sets of a GROUP BY clause, each a list of its
/// expressions; None for a plain GROUP BY.
pub(super) fn grouping_sets(
    exprs: &[ast::Expr],
    modifiers: &[GroupByWithModifier],
) -> Result<Option<Vec<Vec<ast::Expr>>>> {
    use ast::Expr::{Cube, GroupingSets, Rollup};
    let has_sets = exprs
        .iter()
        .any(|e| matches!(e, Rollup(_) | Cube(_) | GroupingSets(_)));
    if !has_sets && modifiers.is_empty() {
        return Ok(None);
    }
    let too_many =
        || QuarryError::plan(format!("GROUP BY makes more than {MAX_SETS} grouping sets"));
    // `GROUP BY a, b WITH ROLLUP` is `GROUP BY ROLLUP (a, b)`
    let singles = || exprs.iter().map(|e| vec![e.clone()]).collect::<Vec<_>>();
    let mut elements: Vec<Vec<Vec<ast::Expr>>> = Vec::new();
    match modifiers {
        [] => {
            for e in exprs {
                elements.push(match e {
                    Rollup(lists) => rollup(lists),
                    Cube(lists) => cube(lists).ok_or_else(too_many)?,
                    GroupingSets(lists) => lists.clone(),
                    plain => vec![vec![plain.clone()]],
                });
            }
        }
        [GroupByWithModifier::Rollup] if !has_sets => elements.push(rollup(&singles())),
        [GroupByWithModifier::Cube] if !has_sets => {
            elements.push(cube(&singles()).ok_or_else(too_many)?)
        }
        _ => {
            return Err(QuarryError::plan(
                "this form of GROUP BY is not supported (GROUPING SETS, ROLLUP, CUBE, WITH ROLLUP and WITH CUBE are)",
            ))
        }
    }
    // the clause's sets: one set of each element's, every combination
    let mut sets: Vec<Vec<ast::Expr>> = vec![vec![]];
    for element in elements {
        if sets.len() * element.len() > MAX_SETS {
            return Err(too_many());
        }
        sets = sets
            .iter()
            .flat_map(|s| element.iter().map(move |e| [s.clone(), e.clone()].concat()))
            .collect();
    }
    Ok(Some(sets))
}

/// ROLLUP (a, b): (a, b), (a), ().
fn rollup(lists: &[Vec<ast::Expr>]) -> Vec<Vec<ast::Expr>> {
    (0..=lists.len())
        .rev()
        .map(|k| lists[..k].concat())
        .collect()
}

/// CUBE (a, b): (a, b), (a), (b), (); None when that is too many.
fn cube(lists: &[Vec<ast::Expr>]) -> Option<Vec<Vec<ast::Expr>>> {
    if lists.len() > MAX_SETS.trailing_zeros() as usize {
        return None;
    }
    let n = lists.len();
    Some(
        (0..1usize << n)
            .rev()
            .map(|mask| {
                (0..n)
                    .filter(|i| mask & (1 << (n - 1 - i)) != 0)
                    .flat_map(|i| lists[i].clone())
                    .collect()
            })
            .collect(),
    )
}

/// The arguments of a `grouping(…)` call as group column positions (None
/// for one that is not a column), or None when `x` is no such call.
fn grouping_arguments(x: &Expr) -> Option<Vec<Option<usize>>> {
    match x {
        Expr::Function {
            func: ScalarFunc::Grouping,
            args,
            ..
        } => Some(
            args.iter()
                .map(|a| match a {
                    Expr::Column(i) => Some(*i),
                    _ => None,
                })
                .collect(),
        ),
        _ => None,
    }
}

/// The `grouping(…)` calls of `exprs` (bound over the aggregate's output,
/// so that their arguments are group columns), in order of appearance.
pub(super) fn grouping_calls<'e>(
    exprs: impl Iterator<Item = &'e Expr>,
    group_count: usize,
) -> Result<Vec<Vec<usize>>> {
    let mut calls: Vec<Vec<usize>> = Vec::new();
    let mut bad = false;
    for e in exprs {
        e.visit(&mut |x| {
            if let Some(args) = grouping_arguments(x) {
                let columns: Vec<usize> = args
                    .iter()
                    .filter_map(|a| a.filter(|i| *i < group_count))
                    .collect();
                bad |= columns.len() != args.len();
                if !calls.contains(&columns) {
                    calls.push(columns);
                }
            }
        });
    }
    if bad {
        return Err(QuarryError::plan(
            "the arguments of grouping() must be GROUP BY expressions",
        ));
    }
    Ok(calls)
}

/// `e` with each `grouping(…)` call replaced by its column: the one after
/// the group and aggregate columns, in the order of `calls`.
pub(super) fn replace_grouping_calls(
    e: Expr,
    first_column: usize,
    calls: &[Vec<usize>],
) -> Result<Expr> {
    e.transform_down(&mut |x| {
        let columns: Option<Vec<usize>> =
            grouping_arguments(x).and_then(|a| a.into_iter().collect());
        Ok(columns
            .and_then(|c| calls.iter().position(|call| *call == c))
            .map(|k| Expr::Column(first_column + k)))
    })
}

/// An aggregate for every grouping set (of positions in `group`), with
/// the columns of an aggregate by every group expression (NULL where its
/// set does not group by it) and the value of each `grouping()` call, the
/// rows of every set one after another.
pub(super) fn plan(
    input: LogicalPlan,
    group: &[Expr],
    aggs: &[AggregateExpr],
    names: &[String],
    sets: &[Vec<usize>],
    calls: &[Vec<usize>],
) -> Result<LogicalPlan> {
    let whole = LogicalPlan::aggregate(input.clone(), group.to_vec(), aggs.to_vec(), names)?;
    let whole = whole.schema();
    let mut fields: Vec<Field> = whole
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let f = f.as_ref().clone();
            if i < group.len() {
                f.with_nullable(true)
            } else {
                f
            }
        })
        .collect();
    fields.extend(
        (0..calls.len()).map(|k| Field::new(format!("#grouping{k}"), DataType::Int64, false)),
    );
    let schema = Arc::new(Schema::new(fields));
    let inputs = sets
        .iter()
        .map(|set| {
            let set_group: Vec<Expr> = set.iter().map(|&i| group[i].clone()).collect();
            let mut set_names: Vec<String> = set.iter().map(|&i| names[i].clone()).collect();
            set_names.extend_from_slice(&names[group.len()..]);
            let aggregate =
                LogicalPlan::aggregate(input.clone(), set_group, aggs.to_vec(), &set_names)?;
            let mut exprs: Vec<Expr> = (0..group.len())
                .map(|i| match set.iter().position(|&j| j == i) {
                    Some(p) => Ok(Expr::Column(p)),
                    None => Ok(Expr::Literal(ScalarValue::try_from(
                        whole.field(i).data_type(),
                    )?)),
                })
                .collect::<Result<_>>()?;
            exprs.extend((0..aggs.len()).map(|j| Expr::Column(set.len() + j)));
            exprs.extend(calls.iter().map(|args| {
                // a 1 bit per argument the set does not group by, the
                // first argument the highest
                let bits = args
                    .iter()
                    .fold(0i64, |acc, i| acc << 1 | i64::from(!set.contains(i)));
                Expr::Literal(ScalarValue::Int64(Some(bits)))
            }));
            Ok(LogicalPlan::Project {
                input: Box::new(aggregate),
                exprs,
                schema: schema.clone(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(LogicalPlan::Union { inputs, schema })
}

#[cfg(test)]
mod tests {
    use super::grouping_sets;
    use sqlparser::ast::{GroupByExpr, SetExpr, Statement};
    use sqlparser::dialect::GenericDialect;
    use sqlparser::parser::Parser;

    /// The sets of a query's GROUP BY, each as its expressions' text.
    fn sets_of(sql: &str) -> Vec<String> {
        let statements = Parser::parse_sql(&GenericDialect {}, sql).unwrap();
        let Statement::Query(q) = &statements[0] else {
            panic!("not a query")
        };
        let SetExpr::Select(select) = q.body.as_ref() else {
            panic!("not a select")
        };
        let GroupByExpr::Expressions(exprs, modifiers) = &select.group_by else {
            panic!("no GROUP BY")
        };
        grouping_sets(exprs, modifiers)
            .unwrap()
            .unwrap()
            .iter()
            .map(|set| {
                let keys: Vec<String> = set.iter().map(|e| e.to_string()).collect();
                format!("({})", keys.join(", "))
            })
            .collect()
    }

    #[test]
    fn every_combination_of_the_elements_sets() {
        assert_eq!(
            sets_of("SELECT 1 FROM t GROUP BY a, CUBE (b, c), ROLLUP ((d, e))"),
            [
                "(a, b, c, d, e)",
                "(a, b, c)",
                "(a, b, d, e)",
                "(a, b)",
                "(a, c, d, e)",
                "(a, c)",
                "(a, d, e)",
                "(a)"
            ]
        );
        assert_eq!(
            sets_of("SELECT 1 FROM t GROUP BY GROUPING SETS ((a, b), (c), ())"),
            ["(a, b)", "(c)", "()"]
        );
        assert_eq!(
            sets_of("SELECT 1 FROM t GROUP BY a, b WITH ROLLUP"),
            ["(a, b)", "(a)", "()"]
        );
    }
}
