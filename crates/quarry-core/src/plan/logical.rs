//! Logical plan nodes. Every node knows its output schema.

use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use super::expr::{AggregateExpr, Expr, JoinKind, SortKey};
use crate::catalog::TableProvider;
use crate::error::Result;

#[derive(Debug, Clone)]
pub struct Scan {
    /// The name the table was referred to by (for EXPLAIN).
    pub table_name: String,
    pub provider: Arc<dyn TableProvider>,
    /// Table columns to read, in output order.
    pub projection: Vec<usize>,
    /// Conjuncts over the scan's output schema, used to prune partitions
    /// (row groups); they are still evaluated by a Filter above the scan.
    pub filters: Vec<Expr>,
    pub schema: SchemaRef,
}

#[derive(Debug, Clone)]
pub enum LogicalPlan {
    Scan(Scan),
    /// Rows given inline (SELECT without FROM, VALUES).
    Values {
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    },
    Filter {
        input: Box<LogicalPlan>,
        predicate: Expr,
    },
    Project {
        input: Box<LogicalPlan>,
        exprs: Vec<Expr>,
        schema: SchemaRef,
    },
    /// Output: the group columns, then one column per aggregate.
    Aggregate {
        input: Box<LogicalPlan>,
        group: Vec<Expr>,
        aggs: Vec<AggregateExpr>,
        schema: SchemaRef,
    },
    Sort {
        input: Box<LogicalPlan>,
        keys: Vec<SortKey>,
        /// Keep only the first `fetch` rows (top-k).
        fetch: Option<usize>,
    },
    Limit {
        input: Box<LogicalPlan>,
        skip: usize,
        fetch: Option<usize>,
    },
    /// A hash join: `on` pairs a key over the left input with a key over the
    /// right input; `filter` is a residual predicate over left ++ right
    /// columns. An inner join without keys is a cross join.
    Join {
        left: Box<LogicalPlan>,
        right: Box<LogicalPlan>,
        kind: JoinKind,
        on: Vec<(Expr, Expr)>,
        filter: Option<Expr>,
        schema: SchemaRef,
    },
    /// The input's columns, then one per window expression; all of them
    /// share one PARTITION BY and ORDER BY (one sort of the input).
    Window {
        input: Box<LogicalPlan>,
        exprs: Vec<super::window::WindowExpr>,
        schema: SchemaRef,
    },
    /// Each row of `input` once per value of a series whose arguments read
    /// the row (`FROM t, generate_series(1, t.n)`), the value as a last
    /// BIGINT column. A row whose series is empty, or one of whose
    /// arguments is NULL, gives no row.
    Series {
        input: Box<LogicalPlan>,
        /// range's or generate_series' 1 to 3 BIGINT arguments, over
        /// `input`'s columns
        args: Vec<Expr>,
        /// generate_series: the stop is a value of the series
        inclusive: bool,
        schema: SchemaRef,
    },
    /// The rows of every input, one after another (UNION ALL). The inputs
    /// have the schema's column types; the names are the first input's.
    Union {
        inputs: Vec<LogicalPlan>,
        schema: SchemaRef,
    },
}

/// The output schema of a join: left ++ right for inner and outer joins
/// (the side that may miss becomes nullable), left only for semi and anti,
/// left plus a boolean `mark` for mark joins.
pub fn join_schema(left: &Schema, right: &Schema, kind: JoinKind) -> SchemaRef {
    let nullable =
        |f: &Arc<Field>, n: bool| Arc::new(f.as_ref().clone().with_nullable(f.is_nullable() || n));
    let mut fields: Vec<Arc<Field>> = left
        .fields()
        .iter()
        .map(|f| nullable(f, matches!(kind, JoinKind::Right | JoinKind::Full)))
        .collect();
    if matches!(kind, JoinKind::RightSemi | JoinKind::RightAnti) {
        return Arc::new(Schema::new(
            right.fields().iter().cloned().collect::<Vec<_>>(),
        ));
    }
    match kind {
        JoinKind::Semi | JoinKind::Anti | JoinKind::RightSemi | JoinKind::RightAnti => {}
        JoinKind::Mark => fields.push(Arc::new(Field::new(
            "mark",
            arrow::datatypes::DataType::Boolean,
            true,
        ))),
        _ => fields.extend(
            right
                .fields()
                .iter()
                .map(|f| nullable(f, matches!(kind, JoinKind::Left | JoinKind::Full))),
        ),
    }
    Arc::new(Schema::new(fields))
}

impl LogicalPlan {
    pub fn schema(&self) -> SchemaRef {
        match self {
            LogicalPlan::Scan(s) => s.schema.clone(),
            LogicalPlan::Values { schema, .. }
            | LogicalPlan::Project { schema, .. }
            | LogicalPlan::Aggregate { schema, .. }
            | LogicalPlan::Join { schema, .. }
            | LogicalPlan::Window { schema, .. }
            | LogicalPlan::Series { schema, .. }
            | LogicalPlan::Union { schema, .. } => schema.clone(),
            LogicalPlan::Filter { input, .. }
            | LogicalPlan::Sort { input, .. }
            | LogicalPlan::Limit { input, .. } => input.schema(),
        }
    }

    pub fn inputs(&self) -> Vec<&LogicalPlan> {
        match self {
            LogicalPlan::Scan(_) | LogicalPlan::Values { .. } => vec![],
            LogicalPlan::Filter { input, .. }
            | LogicalPlan::Project { input, .. }
            | LogicalPlan::Aggregate { input, .. }
            | LogicalPlan::Sort { input, .. }
            | LogicalPlan::Window { input, .. }
            | LogicalPlan::Series { input, .. }
            | LogicalPlan::Limit { input, .. } => vec![input],
            LogicalPlan::Join { left, right, .. } => vec![left, right],
            LogicalPlan::Union { inputs, .. } => inputs.iter().collect(),
        }
    }

    /// Calls `f` on every scan in the plan.
    pub fn visit_scans<'s>(&'s self, f: &mut dyn FnMut(&'s Scan)) {
        if let LogicalPlan::Scan(s) = self {
            f(s);
        }
        for input in self.inputs() {
            input.visit_scans(f);
        }
    }

    /// A join of `left` and `right`; its schema follows from the kind.
    pub fn join(
        left: LogicalPlan,
        right: LogicalPlan,
        kind: JoinKind,
        on: Vec<(Expr, Expr)>,
        filter: Option<Expr>,
    ) -> LogicalPlan {
        let schema = join_schema(&left.schema(), &right.schema(), kind);
        LogicalPlan::Join {
            left: Box::new(left),
            right: Box::new(right),
            kind,
            on,
            filter,
            schema,
        }
    }

    /// A projection of `exprs` named `names` over `input`.
    pub fn project(input: LogicalPlan, exprs: Vec<Expr>, names: &[String]) -> Result<LogicalPlan> {
        let in_schema = input.schema();
        let fields = exprs
            .iter()
            .zip(names)
            .map(|(e, n)| e.to_field(n, &in_schema))
            .collect::<Result<Vec<Field>>>()?;
        Ok(LogicalPlan::Project {
            input: Box::new(input),
            exprs,
            schema: Arc::new(Schema::new(fields)),
        })
    }

    /// Window expressions (sharing one window) over `input`, output
    /// columns named `names`.
    pub fn window(
        input: LogicalPlan,
        exprs: Vec<super::window::WindowExpr>,
        names: &[String],
    ) -> Result<LogicalPlan> {
        let in_schema = input.schema();
        let mut fields: Vec<Field> = in_schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        for (w, n) in exprs.iter().zip(names) {
            fields.push(Field::new(n, w.data_type(&in_schema)?, w.nullable()));
        }
        Ok(LogicalPlan::Window {
            input: Box::new(input),
            exprs,
            schema: Arc::new(Schema::new(fields)),
        })
    }

    /// `input` with a series per row (see `LogicalPlan::Series`), its
    /// column named `name`.
    pub fn series(input: LogicalPlan, args: Vec<Expr>, inclusive: bool, name: &str) -> LogicalPlan {
        let mut fields: Vec<Arc<Field>> = input.schema().fields().iter().cloned().collect();
        fields.push(Arc::new(Field::new(
            name,
            arrow::datatypes::DataType::Int64,
            false,
        )));
        LogicalPlan::Series {
            input: Box::new(input),
            args,
            inclusive,
            schema: Arc::new(Schema::new(fields)),
        }
    }

    /// An aggregate with output names `names` (group columns, then aggregates).
    pub fn aggregate(
        input: LogicalPlan,
        group: Vec<Expr>,
        aggs: Vec<AggregateExpr>,
        names: &[String],
    ) -> Result<LogicalPlan> {
        let in_schema = input.schema();
        let mut fields = Vec::with_capacity(names.len());
        for (e, n) in group.iter().zip(names) {
            fields.push(e.to_field(n, &in_schema)?);
        }
        for (a, n) in aggs.iter().zip(&names[group.len()..]) {
            // count never yields NULL; the others do on empty or all-NULL input
            let nullable = !a.func.is_count();
            fields.push(Field::new(n, a.data_type(&in_schema)?, nullable));
        }
        Ok(LogicalPlan::Aggregate {
            input: Box::new(input),
            group,
            aggs,
            schema: Arc::new(Schema::new(fields)),
        })
    }
}
