//! UNION, INTERSECT and EXCEPT. Every one is a UNION ALL underneath:
//! UNION groups the rows of the union by all columns; INTERSECT and EXCEPT
//! tag each side's rows, group by all columns and keep the groups that the
//! tags allow. Grouping treats NULLs as equal, as set operations must.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema};
use datafusion_common::ScalarValue;
use sqlparser::ast::{SetExpr, SetOperator, SetQuantifier};

use super::binder::{Binder, Bound};
use super::coerce::comparison_type;
use super::scope::Scope;
use crate::error::{QuarryError, Result};
use crate::plan::{
    AggFunc, AggregateExpr, BinaryOp, Expr, LogicalPlan, WindowExpr, WindowFrame, WindowFunc,
};

impl Binder<'_> {
    /// One side of a set operation (its own ORDER BY and LIMIT are those of
    /// a parenthesised query).
    pub(super) fn bind_set_side(&self, side: &SetExpr) -> Result<Bound> {
        match side {
            SetExpr::Select(select) => self.bind_select(select, &[]),
            SetExpr::Query(q) => self.bind_query(q),
            SetExpr::Values(v) => self.bind_values(v),
            SetExpr::SetOperation {
                left,
                op,
                set_quantifier,
                right,
            } => self.bind_set_operation(left, *op, *set_quantifier, right),
            other => Err(QuarryError::plan(format!("unsupported query: {other}"))),
        }
    }

    pub(super) fn bind_set_operation(
        &self,
        left: &SetExpr,
        op: SetOperator,
        quantifier: SetQuantifier,
        right: &SetExpr,
    ) -> Result<Bound> {
        let name = match op {
            SetOperator::Union => "UNION",
            SetOperator::Intersect => "INTERSECT",
            SetOperator::Except | SetOperator::Minus => "EXCEPT",
        };
        let all = match quantifier {
            SetQuantifier::All => true,
            SetQuantifier::Distinct | SetQuantifier::None => false,
            _ => {
                return Err(QuarryError::plan(format!(
                    "{name} {quantifier} is not supported (the sides are matched by position)"
                )))
            }
        };
        let (l, r) = (self.bind_set_side(left)?, self.bind_set_side(right)?);
        let (ls, rs) = (l.plan.schema(), r.plan.schema());
        if ls.fields().len() != rs.fields().len() {
            return Err(QuarryError::plan(format!(
                "the two sides of {name} have {} and {} columns",
                ls.fields().len(),
                rs.fields().len()
            )));
        }
        // Each column meets at one type; the names are the left side's.
        let mut fields = Vec::new();
        for (i, (lf, rf)) in ls.fields().iter().zip(rs.fields()).enumerate() {
            let column = Expr::Column(i);
            let t = comparison_type(&column, lf.data_type(), &column, rf.data_type(), None)
                .map_err(|_| {
                    QuarryError::plan(format!(
                        "column {} of {name} is {} on the left and {} on the right",
                        i + 1,
                        crate::plan::types::sql_type_name(lf.data_type()),
                        crate::plan::types::sql_type_name(rf.data_type())
                    ))
                })?;
            fields.push(Field::new(lf.name(), t, true));
        }
        let names: Vec<String> = fields.iter().map(|f| f.name().clone()).collect();
        let bound = |plan: LogicalPlan| Bound {
            plan,
            scope: Scope::new(None, names.clone()),
        };
        if op == SetOperator::Union {
            let union = union_all(vec![l.plan, r.plan], &fields, &[])?;
            if all {
                return Ok(bound(union));
            }
            let group = (0..fields.len()).map(Expr::Column).collect();
            return Ok(bound(LogicalPlan::aggregate(union, group, vec![], &names)?));
        }
        // INTERSECT and EXCEPT: a row of the left side counts 1 in column
        // `from_left`, one of the right side 1 in `from_right`. With ALL,
        // each side numbers the copies of a row (1, 2, …) and the copy's
        // number is part of the row: the k-th copy on the left meets the
        // k-th on the right.
        let one = || Expr::lit(ScalarValue::Int64(Some(1)));
        let zero = || Expr::lit(ScalarValue::Int64(Some(0)));
        let n = fields.len();
        let (mut left_tags, mut right_tags) = (vec![one(), zero()], vec![zero(), one()]);
        let (mut left, mut right) = (l.plan, r.plan);
        if all {
            left = number_copies(left)?;
            right = number_copies(right)?;
            left_tags.push(Expr::Column(n));
            right_tags.push(Expr::Column(n));
        }
        let union = union_all(vec![left, right], &fields, &[left_tags, right_tags])?;
        let mut group: Vec<Expr> = (0..n).map(Expr::Column).collect();
        if all {
            group.push(Expr::Column(n + 2));
        }
        let keys = group.len();
        let max_of = |c: usize| AggregateExpr {
            func: AggFunc::Max,
            arg: Some(Expr::Column(c)),
            distinct: false,
            param: None,
        };
        let mut agg_names = names.clone();
        if all {
            agg_names.push("copy".to_string());
        }
        agg_names.extend(["from_left".to_string(), "from_right".to_string()]);
        let grouped =
            LogicalPlan::aggregate(union, group, vec![max_of(n), max_of(n + 1)], &agg_names)?;
        let right_count = if op == SetOperator::Intersect { 1 } else { 0 };
        let keep = Expr::binary(
            BinaryOp::And,
            Expr::binary(BinaryOp::Eq, Expr::Column(keys), one()),
            Expr::binary(
                BinaryOp::Eq,
                Expr::Column(keys + 1),
                Expr::lit(ScalarValue::Int64(Some(right_count))),
            ),
        );
        let filtered = LogicalPlan::Filter {
            input: Box::new(grouped),
            predicate: keep,
        };
        let columns = (0..n).map(Expr::Column).collect();
        Ok(bound(LogicalPlan::project(filtered, columns, &names)?))
    }
}

/// `plan` with a last column numbering the copies of each row: 1, 2, …
/// among the rows equal in every column (NULLs equal to each other).
fn number_copies(plan: LogicalPlan) -> Result<LogicalPlan> {
    let columns = plan.schema().fields().len();
    let copy = WindowExpr {
        func: WindowFunc::RowNumber,
        args: vec![],
        distinct: false,
        param: None,
        partition_by: (0..columns).map(Expr::Column).collect(),
        order_by: vec![],
        frame: WindowFrame::default_for(false),
    };
    LogicalPlan::window(plan, vec![copy], &["copy".to_string()])
}

/// UNION ALL of `inputs`, each cast to the types of `fields` (and given
/// their names), with the columns `extra[i]` appended to input i.
fn union_all(
    inputs: Vec<LogicalPlan>,
    fields: &[Field],
    extra: &[Vec<Expr>],
) -> Result<LogicalPlan> {
    let mut all_fields: Vec<Field> = fields.to_vec();
    if let Some(first) = extra.first() {
        all_fields.extend(
            (0..first.len()).map(|i| Field::new(format!("#tag{i}"), DataType::Int64, false)),
        );
    }
    let schema = Arc::new(Schema::new(all_fields));
    let inputs = inputs
        .into_iter()
        .enumerate()
        .map(|(k, input)| {
            let in_schema = input.schema();
            let mut exprs: Vec<Expr> = fields
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    let column = Expr::Column(i);
                    if in_schema.field(i).data_type() == f.data_type() {
                        column
                    } else {
                        column.cast(f.data_type().clone())
                    }
                })
                .collect();
            exprs.extend(extra.get(k).cloned().unwrap_or_default());
            // Every input gives its batches the union's schema.
            LogicalPlan::Project {
                input: Box::new(input),
                exprs,
                schema: schema.clone(),
            }
        })
        .collect();
    Ok(LogicalPlan::Union { inputs, schema })
}
