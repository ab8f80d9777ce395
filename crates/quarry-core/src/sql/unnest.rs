//! The general way to remove a dependent join ("Unnesting Arbitrary
//! Queries", Neumann and Kemper, 2015): a query Q that reads columns of an
//! outer relation L (`OuterColumn`s, anywhere in Q) is computed once for
//! each distinct value D of those columns, by carrying D's columns through
//! every operator of Q (grouping by them, partitioning windows and limits
//! by them, …); the result joins L on D's columns, NULLs equal. The fast
//! paths of subquery.rs (equality correlation in WHERE of a plain SELECT)
//! come first; this one serves LATERAL and what they refuse.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion_common::ScalarValue;

use crate::error::{QuarryError, Result};
use crate::plan::{
    AggregateExpr, BinaryOp, Expr, JoinKind, LogicalPlan, ScalarFunc, SortKey, WindowExpr,
    WindowFrame, WindowFunc,
};

/// The distinct values of the outer columns a dependent query reads.
pub struct Dependent {
    /// The outer columns read, in the order of D's columns.
    pub outer: Vec<usize>,
    /// D: the distinct values of those columns of the outer relation.
    pub plan: LogicalPlan,
}

impl Dependent {
    /// The outer columns `q` reads, and D over `outer_plan`; None when `q`
    /// reads none.
    pub fn of(q: &LogicalPlan, outer_plan: &LogicalPlan) -> Result<Option<Dependent>> {
        let mut outer = Vec::new();
        visit_plan_exprs(q, &mut |e| {
            e.visit(&mut |x| {
                if let Expr::OuterColumn { index, .. } = x {
                    if !outer.contains(index) {
                        outer.push(*index);
                    }
                }
            })
        });
        if outer.is_empty() {
            return Ok(None);
        }
        outer.sort_unstable();
        let schema = outer_plan.schema();
        let names: Vec<String> = outer
            .iter()
            .map(|&i| format!("__outer_{}", schema.field(i).name()))
            .collect();
        let (source, columns) = values_source(outer_plan, outer.clone());
        let group = columns.into_iter().map(Expr::Column).collect();
        let plan = LogicalPlan::aggregate(source.clone(), group, vec![], &names)?;
        Ok(Some(Dependent { outer, plan }))
    }

    fn width(&self) -> usize {
        self.outer.len()
    }

    fn fields(&self) -> Vec<Field> {
        self.plan
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect()
    }

    /// `e` with outer columns read from D's columns placed at `base`.
    fn map(&self, e: Expr, base: usize) -> Result<Expr> {
        e.transform_up(&mut |x| match x {
            Expr::OuterColumn { index, .. } => self
                .outer
                .iter()
                .position(|&o| o == index)
                .map(|j| Expr::Column(base + j))
                .ok_or_else(|| QuarryError::plan("internal error: an outer column not in D")),
            other => Ok(other),
        })
    }

    fn map_keys(&self, keys: Vec<SortKey>, base: usize) -> Result<Vec<SortKey>> {
        keys.into_iter()
            .map(|k| {
                Ok(SortKey {
                    expr: self.map(k.expr, base)?,
                    ..k
                })
            })
            .collect()
    }

    fn columns(&self, base: usize) -> Vec<Expr> {
        (base..base + self.width()).map(Expr::Column).collect()
    }
}

/// The part of `plan` to take the distinct values of its columns `cols`
/// from, and where they are there: through cross joins, the side that has
/// them all. (The comma items before a LATERAL one are a cross join until
/// WHERE's conditions join them; their values are the same on the one
/// side, or more when the other is empty, and D may hold values no outer
/// row has: they match nothing.)
fn values_source(plan: &LogicalPlan, cols: Vec<usize>) -> (&LogicalPlan, Vec<usize>) {
    if let LogicalPlan::Join {
        left,
        right,
        kind: JoinKind::Inner,
        on,
        filter: None,
        ..
    } = plan
    {
        let nl = width(left);
        if on.is_empty() && cols.iter().all(|&c| c < nl) {
            return values_source(left, cols);
        }
        if on.is_empty() && cols.iter().all(|&c| c >= nl) {
            return values_source(right, cols.into_iter().map(|c| c - nl).collect());
        }
    }
    (plan, cols)
}

/// Join keys that match `left` and `right` columns, NULL equal to NULL (a
/// nullable pair is compared as (coalesce(x, 0), x IS NULL)).
pub fn null_equal_keys(
    pairs: &[(usize, usize)],
    left: &Schema,
    right: &Schema,
) -> Result<Vec<(Expr, Expr)>> {
    let mut keys = Vec::new();
    for &(l, r) in pairs {
        let field = left.field(l);
        let (lc, rc) = (Expr::Column(l), Expr::Column(r));
        if !field.is_nullable() && !right.field(r).is_nullable() {
            keys.push((lc, rc));
            continue;
        }
        let t = field.data_type().clone();
        let zero = ScalarValue::new_default(&t)?;
        let filled = |c: Expr| Expr::Function {
            func: ScalarFunc::Coalesce,
            args: vec![c, Expr::Literal(zero.clone())],
            data_type: t.clone(),
        };
        let is_null = |c: Expr| Expr::IsNull(Box::new(c)).cast(DataType::Int64);
        keys.push((filled(lc.clone()), filled(rc.clone())));
        keys.push((is_null(lc), is_null(rc)));
    }
    Ok(keys)
}

/// Calls `f` on every expression of every node of `plan`.
pub(super) fn visit_plan_exprs(plan: &LogicalPlan, f: &mut dyn FnMut(&Expr)) {
    node_exprs(plan, f);
    for input in plan.inputs() {
        visit_plan_exprs(input, f);
    }
}

fn node_exprs(plan: &LogicalPlan, f: &mut dyn FnMut(&Expr)) {
    match plan {
        LogicalPlan::Scan(_) | LogicalPlan::Values { .. } | LogicalPlan::Union { .. } => {}
        LogicalPlan::Limit { .. } => {}
        LogicalPlan::Filter { predicate, .. } => f(predicate),
        LogicalPlan::Project { exprs, .. } | LogicalPlan::Series { args: exprs, .. } => {
            exprs.iter().for_each(f)
        }
        LogicalPlan::Aggregate { group, aggs, .. } => {
            group.iter().for_each(&mut *f);
            aggs.iter().filter_map(|a| a.arg.as_ref()).for_each(f);
        }
        LogicalPlan::Sort { keys, .. } => keys.iter().for_each(|k| f(&k.expr)),
        LogicalPlan::Join { on, filter, .. } => {
            for (l, r) in on {
                f(l);
                f(r);
            }
            filter.iter().for_each(f);
        }
        LogicalPlan::Window { exprs, .. } => {
            for w in exprs {
                w.args.iter().for_each(&mut *f);
                w.partition_by.iter().for_each(&mut *f);
                w.order_by.iter().for_each(|k| f(&k.expr));
            }
        }
    }
}

pub(super) fn expr_reads_outer(e: &Expr) -> bool {
    let mut found = false;
    e.visit(&mut |x| found |= matches!(x, Expr::OuterColumn { .. }));
    found
}

/// Whether `plan` reads columns of an outer query.
pub fn reads_outer(plan: &LogicalPlan) -> bool {
    let mut found = false;
    visit_plan_exprs(plan, &mut |e| found |= expr_reads_outer(e));
    found
}

fn width(plan: &LogicalPlan) -> usize {
    plan.schema().fields().len()
}

fn names_of(schema: &SchemaRef) -> Vec<String> {
    schema.fields().iter().map(|f| f.name().clone()).collect()
}

/// The columns `order` of `plan`, keeping their names.
fn reorder(plan: LogicalPlan, order: Vec<usize>) -> Result<LogicalPlan> {
    let schema = plan.schema();
    let names: Vec<String> = order
        .iter()
        .map(|&i| schema.field(i).name().clone())
        .collect();
    LogicalPlan::project(plan, order.into_iter().map(Expr::Column).collect(), &names)
}

/// `plan` (which reads outer columns) computed for every row of `d`: its
/// columns, then D's.
pub fn unnest(plan: LogicalPlan, d: &Dependent) -> Result<LogicalPlan> {
    let k = d.width();
    if !reads_outer(&plan) {
        return Ok(LogicalPlan::join(
            plan,
            d.plan.clone(),
            JoinKind::Inner,
            vec![],
            None,
        ));
    }
    Ok(match plan {
        LogicalPlan::Filter { input, predicate } => {
            let w = width(&input);
            LogicalPlan::Filter {
                input: Box::new(unnest(*input, d)?),
                predicate: d.map(predicate, w)?,
            }
        }
        LogicalPlan::Project {
            input,
            exprs,
            schema,
        } => {
            let w = width(&input);
            let mut exprs = exprs
                .into_iter()
                .map(|e| d.map(e, w))
                .collect::<Result<Vec<_>>>()?;
            exprs.extend(d.columns(w));
            let mut names = names_of(&schema);
            names.extend(d.fields().iter().map(|f| f.name().clone()));
            LogicalPlan::project(unnest(*input, d)?, exprs, &names)?
        }
        LogicalPlan::Aggregate {
            input,
            group,
            aggs,
            schema,
        } => {
            let w = width(&input);
            let (g, a) = (group.len(), aggs.len());
            let scalar = group.is_empty();
            let mut group = group
                .into_iter()
                .map(|e| d.map(e, w))
                .collect::<Result<Vec<_>>>()?;
            group.extend(d.columns(w));
            let aggs = aggs
                .into_iter()
                .map(|x| {
                    Ok(AggregateExpr {
                        arg: x.arg.map(|e| d.map(e, w)).transpose()?,
                        ..x
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let names = names_of(&schema);
            let mut all = names[..g].to_vec();
            all.extend(d.fields().iter().map(|f| f.name().clone()));
            all.extend(names[g..].iter().cloned());
            let counts: Vec<bool> = aggs.iter().map(|x| x.func.is_count()).collect();
            let grouped = LogicalPlan::aggregate(unnest(*input, d)?, group, aggs, &all)?;
            // group columns, aggregates, D
            let mut order: Vec<usize> = (0..g).collect();
            order.extend(g + k..g + k + a);
            order.extend(g..g + k);
            let grouped = reorder(grouped, order)?;
            if !scalar {
                grouped
            } else {
                // An aggregate without GROUP BY has a row for every d, also
                // one that no input row has (count 0, the others NULL).
                let keys = null_equal_keys(
                    &(0..k).map(|j| (j, a + j)).collect::<Vec<_>>(),
                    &d.plan.schema(),
                    &grouped.schema(),
                )?;
                let joined = LogicalPlan::join(d.plan.clone(), grouped, JoinKind::Left, keys, None);
                let mut exprs: Vec<Expr> = counts
                    .iter()
                    .enumerate()
                    .map(|(i, &count)| {
                        let c = Expr::Column(k + i);
                        if count {
                            Expr::Function {
                                func: ScalarFunc::Coalesce,
                                args: vec![c, Expr::Literal(ScalarValue::Int64(Some(0)))],
                                data_type: DataType::Int64,
                            }
                        } else {
                            c
                        }
                    })
                    .collect();
                exprs.extend(d.columns(0));
                let mut out = names[g..].to_vec();
                out.extend(d.fields().iter().map(|f| f.name().clone()));
                LogicalPlan::project(joined, exprs, &out)?
            }
        }
        LogicalPlan::Sort { input, keys, fetch } => {
            let w = width(&input);
            let keys = d.map_keys(keys, w)?;
            let input = unnest(*input, d)?;
            match fetch {
                None => LogicalPlan::Sort {
                    input: Box::new(input),
                    keys,
                    fetch: None,
                },
                Some(n) => first_rows_per_d(input, d, w, keys, 0, Some(n))?,
            }
        }
        LogicalPlan::Limit { input, skip, fetch } => {
            if let LogicalPlan::Project {
                input: below,
                exprs,
                schema,
            } = *input
            {
                // A limit commutes with a projection: down to the Sort that
                // the projection (dropping ORDER BY's columns) hides.
                let limited = LogicalPlan::Limit {
                    input: below,
                    skip,
                    fetch,
                };
                return unnest(
                    LogicalPlan::Project {
                        input: Box::new(limited),
                        exprs,
                        schema,
                    },
                    d,
                );
            }
            // the order of a Sort right below, per d
            let w = width(&input);
            let (input, keys) = match *input {
                LogicalPlan::Sort {
                    input,
                    keys,
                    fetch: None,
                } => (*input, d.map_keys(keys, w)?),
                other => (other, vec![]),
            };
            first_rows_per_d(unnest(input, d)?, d, w, keys, skip, fetch)?
        }
        LogicalPlan::Join {
            left,
            right,
            kind,
            on,
            filter,
            ..
        } => unnest_join(*left, *right, kind, on, filter, d)?,
        LogicalPlan::Union { inputs, schema } => {
            let inputs = inputs
                .into_iter()
                .map(|p| unnest(p, d))
                .collect::<Result<Vec<_>>>()?;
            let mut fields: Vec<Field> =
                schema.fields().iter().map(|f| f.as_ref().clone()).collect();
            fields.extend(d.fields());
            LogicalPlan::Union {
                inputs,
                schema: Arc::new(Schema::new(fields)),
            }
        }
        LogicalPlan::Window {
            input,
            exprs,
            schema,
        } => {
            let w = width(&input);
            let n = exprs.len();
            let exprs = exprs
                .into_iter()
                .map(|x| {
                    let mut partition_by = x
                        .partition_by
                        .into_iter()
                        .map(|e| d.map(e, w))
                        .collect::<Result<Vec<_>>>()?;
                    partition_by.extend(d.columns(w));
                    Ok(WindowExpr {
                        args: x
                            .args
                            .into_iter()
                            .map(|e| d.map(e, w))
                            .collect::<Result<_>>()?,
                        partition_by,
                        order_by: d.map_keys(x.order_by, w)?,
                        ..x
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let names = names_of(&schema);
            let windowed = LogicalPlan::window(unnest(*input, d)?, exprs, &names[w..])?;
            // input, windows, D
            let mut order: Vec<usize> = (0..w).collect();
            order.extend(w + k..w + k + n);
            order.extend(w..w + k);
            reorder(windowed, order)?
        }
        LogicalPlan::Series {
            input,
            args,
            inclusive,
            schema,
        } => {
            // input, D, series → input, series, D
            let w = width(&input);
            let args = args
                .into_iter()
                .map(|e| d.map(e, w))
                .collect::<Result<Vec<_>>>()?;
            let name = schema.field(w).name().clone();
            let series = LogicalPlan::series(unnest(*input, d)?, args, inclusive, &name);
            let mut order: Vec<usize> = (0..w).collect();
            order.push(w + k);
            order.extend(w..w + k);
            reorder(series, order)?
        }
        LogicalPlan::Scan(_) | LogicalPlan::Values { .. } => {
            return Err(QuarryError::plan(
                "internal error: a leaf reads outer columns",
            ))
        }
    })
}

/// Rows `skip + 1 ..= skip + fetch` of each d's rows (in `keys`' order):
/// `input` has the original `w` columns, then D's.
fn first_rows_per_d(
    input: LogicalPlan,
    d: &Dependent,
    w: usize,
    keys: Vec<SortKey>,
    skip: usize,
    fetch: Option<usize>,
) -> Result<LogicalPlan> {
    let k = d.width();
    let number = WindowExpr {
        func: WindowFunc::RowNumber,
        args: vec![],
        distinct: false,
        param: None,
        partition_by: d.columns(w),
        frame: WindowFrame::default_for(!keys.is_empty()),
        order_by: keys,
    };
    let numbered = LogicalPlan::window(input, vec![number], &["__row".to_string()])?;
    let row = || Expr::Column(w + k);
    let int = |v: usize| Expr::Literal(ScalarValue::Int64(Some(v as i64)));
    let mut conds = vec![Expr::binary(BinaryOp::Gt, row(), int(skip))];
    if let Some(f) = fetch {
        conds.push(Expr::binary(BinaryOp::LtEq, row(), int(skip + f)));
    }
    let filtered = LogicalPlan::Filter {
        input: Box::new(numbered),
        predicate: Expr::and_all(conds),
    };
    reorder(filtered, (0..w + k).collect())
}

/// A join under a dependent join: D goes to the side(s) that read outer
/// columns (both when the other side's rows must be kept per d).
fn unnest_join(
    left: LogicalPlan,
    right: LogicalPlan,
    kind: JoinKind,
    on: Vec<(Expr, Expr)>,
    filter: Option<Expr>,
    d: &Dependent,
) -> Result<LogicalPlan> {
    let k = d.width();
    let (wl, wr) = (width(&left), width(&right));
    let right_reads = reads_outer(&right) || on.iter().any(|(_, r)| expr_reads_outer(r));
    let only_left = !right_reads
        && matches!(
            kind,
            JoinKind::Inner | JoinKind::Left | JoinKind::Semi | JoinKind::Anti | JoinKind::Mark
        );
    // left' = left ++ D (always); right' = right ++ D unless only the left reads
    let shift_right = |e: Expr, by: usize| -> Result<Expr> {
        e.transform_up(&mut |x| {
            Ok(match x {
                Expr::Column(i) if i >= wl => Expr::Column(i + by),
                other => other,
            })
        })
    };
    let left2 = unnest(left, d)?;
    let mut on2 = on
        .into_iter()
        .map(|(l, r)| Ok((d.map(l, wl)?, d.map(r, wr)?)))
        .collect::<Result<Vec<_>>>()?;
    // the filter sees left ++ D ++ right (++ D)
    let filter2 = filter.map(|f| d.map(shift_right(f, k)?, wl)).transpose()?;
    let right2 = if only_left {
        right
    } else {
        let r = unnest(right, d)?;
        let pairs: Vec<(usize, usize)> = (0..k).map(|j| (wl + j, wr + j)).collect();
        on2.extend(null_equal_keys(&pairs, &left2.schema(), &r.schema())?);
        r
    };
    let joined = LogicalPlan::join(left2, right2, kind, on2, filter2);
    Ok(match kind {
        // (right ++ D for the right kinds: both sides carry D then)
        JoinKind::Semi | JoinKind::Anti | JoinKind::RightSemi | JoinKind::RightAnti => joined,
        // left, D, right, D → left, right, and the D of the side each row
        // has: the right one's of a RIGHT join, of a FULL join whichever
        // is there (both are the row's d)
        JoinKind::Right | JoinKind::Full => {
            let schema = joined.schema();
            let mut exprs: Vec<Expr> = (0..wl).map(Expr::Column).collect();
            exprs.extend((wl + k..wl + k + wr).map(Expr::Column));
            for j in 0..k {
                let (l, r) = (wl + j, wl + k + wr + j);
                exprs.push(match kind {
                    JoinKind::Right => Expr::Column(r),
                    _ => Expr::Function {
                        func: ScalarFunc::Coalesce,
                        args: vec![Expr::Column(l), Expr::Column(r)],
                        data_type: schema.field(l).data_type().clone(),
                    },
                });
            }
            let mut names: Vec<String> = (0..wl)
                .chain(wl + k..wl + k + wr)
                .map(|i| schema.field(i).name().clone())
                .collect();
            names.extend(d.fields().iter().map(|f| f.name().clone()));
            LogicalPlan::project(joined, exprs, &names)?
        }
        // left, D, mark → left, mark, D
        JoinKind::Mark => {
            let mut order: Vec<usize> = (0..wl).collect();
            order.push(wl + k);
            order.extend(wl..wl + k);
            reorder(joined, order)?
        }
        // left, D, right [, D] → left, right, D
        _ => {
            let mut order: Vec<usize> = (0..wl).collect();
            order.extend(wl + k..wl + k + wr);
            order.extend(wl..wl + k);
            reorder(joined, order)?
        }
    })
}

/// `outer` joined with `q` (which reads `outer`'s columns) computed per
/// distinct value of those columns, matched on them (NULLs equal) and on
/// `on` (right sides over `q`'s columns) and `filter` (over outer ++ q).
/// The columns: outer's, then q's and D's (inner and left joins), or
/// outer's alone (semi and anti joins).
pub fn join_dependent(
    outer: LogicalPlan,
    q: LogicalPlan,
    kind: JoinKind,
    mut on: Vec<(Expr, Expr)>,
    filter: Option<Expr>,
) -> Result<LogicalPlan> {
    let d = Dependent::of(&q, &outer)?
        .ok_or_else(|| QuarryError::plan("internal error: the subquery reads no outer column"))?;
    let wq = width(&q);
    let per_d = unnest(q, &d)?;
    let pairs: Vec<(usize, usize)> = d
        .outer
        .iter()
        .enumerate()
        .map(|(j, &o)| (o, wq + j))
        .collect();
    on.extend(null_equal_keys(&pairs, &outer.schema(), &per_d.schema())?);
    Ok(LogicalPlan::join(outer, per_d, kind, on, filter))
}

/// `plan` with `f` applied to every expression of every node (the types
/// stay, so the schemas do).
pub fn map_plan_exprs(
    plan: LogicalPlan,
    f: &mut dyn FnMut(Expr) -> Result<Expr>,
) -> Result<LogicalPlan> {
    let plan = crate::optimizer::map_inputs(plan, &mut |p| map_plan_exprs(p, f))?;
    let keys = |keys: Vec<SortKey>, f: &mut dyn FnMut(Expr) -> Result<Expr>| {
        keys.into_iter()
            .map(|k| {
                Ok(SortKey {
                    expr: f(k.expr)?,
                    ..k
                })
            })
            .collect::<Result<Vec<_>>>()
    };
    Ok(match plan {
        LogicalPlan::Filter { input, predicate } => LogicalPlan::Filter {
            input,
            predicate: f(predicate)?,
        },
        LogicalPlan::Project {
            input,
            exprs,
            schema,
        } => LogicalPlan::Project {
            input,
            exprs: exprs.into_iter().map(&mut *f).collect::<Result<_>>()?,
            schema,
        },
        LogicalPlan::Aggregate {
            input,
            group,
            aggs,
            schema,
        } => LogicalPlan::Aggregate {
            input,
            group: group.into_iter().map(&mut *f).collect::<Result<_>>()?,
            aggs: aggs
                .into_iter()
                .map(|a| {
                    Ok(AggregateExpr {
                        arg: a.arg.map(&mut *f).transpose()?,
                        ..a
                    })
                })
                .collect::<Result<_>>()?,
            schema,
        },
        LogicalPlan::Sort {
            input,
            keys: k,
            fetch,
        } => LogicalPlan::Sort {
            input,
            keys: keys(k, f)?,
            fetch,
        },
        LogicalPlan::Join {
            left,
            right,
            kind,
            on,
            filter,
            schema,
        } => LogicalPlan::Join {
            left,
            right,
            kind,
            on: on
                .into_iter()
                .map(|(l, r)| Ok((f(l)?, f(r)?)))
                .collect::<Result<_>>()?,
            filter: filter.map(&mut *f).transpose()?,
            schema,
        },
        LogicalPlan::Window {
            input,
            exprs,
            schema,
        } => LogicalPlan::Window {
            input,
            exprs: exprs
                .into_iter()
                .map(|w| {
                    Ok(WindowExpr {
                        args: w.args.into_iter().map(&mut *f).collect::<Result<_>>()?,
                        partition_by: w
                            .partition_by
                            .into_iter()
                            .map(&mut *f)
                            .collect::<Result<_>>()?,
                        order_by: keys(w.order_by, f)?,
                        ..w
                    })
                })
                .collect::<Result<_>>()?,
            schema,
        },
        LogicalPlan::Series {
            input,
            args,
            inclusive,
            schema,
        } => LogicalPlan::Series {
            input,
            args: args.into_iter().map(&mut *f).collect::<Result<_>>()?,
            inclusive,
            schema,
        },
        other => other,
    })
}
