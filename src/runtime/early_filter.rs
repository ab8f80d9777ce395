//! Filtering a scan's rows before all of its columns are decoded (late
//! materialisation): a scan stage's leading filters, and the key test of a
//! broadcast join that follows them, run inside the scan on the columns they
//! read; the scan then decodes its other columns only at the rows that
//! passed (`ScanPartition::read_filtered`).

use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Array, AsArray, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema, UInt32Type};
use arrow::record_batch::RecordBatch;

use super::task::OpMetrics;
use crate::error::Result;
use crate::exec::operator::Operator;
use crate::graph::{
    drops_unmatched_probe_rows, OpSpec, Stage, TaskContext, EARLY_KEY_FILTER_MAX_ROWS,
};
use crate::plan::{Expr, JoinKind};

pub(crate) struct EarlyFilterPlan {
    /// How many of the stage's leading operators the early filter runs in
    /// their place.
    pub replaces: usize,
    /// The scan's output columns the filters read, increasing.
    pub columns: Vec<usize>,
    /// The filters, over `columns` followed by the row number.
    specs: Vec<OpSpec>,
}

impl EarlyFilterPlan {
    /// The early filter of a scan stage: its leading filters, and the
    /// filters and broadcast joins' key tests further on whose columns come
    /// straight from the scan, through column projections and joins that
    /// keep the probe row's columns (those further on also stay in the
    /// pipeline, cheap there: few rows reach them).
    pub fn for_stage(stage: &Stage) -> Option<Self> {
        let mut replaces = 0;
        let mut leading = true;
        let mut specs = Vec::new();
        // Where each column of the current operator's input comes from in
        // the scan's output (None: from elsewhere); `from` None: the same.
        let mut from: Option<Vec<Option<usize>>> = None;
        let mut joins = 0;
        for op in &stage.ops {
            let to_scan = |c: usize| match &from {
                Some(map) => map.get(c).copied().flatten(),
                None => Some(c),
            };
            match op {
                OpSpec::Filter { .. } | OpSpec::KeyFilter { .. } => {
                    // (one whose columns do not all come from the scan stays
                    // in the pipeline only)
                    if let Some(spec) = with_columns(op, &|c| to_scan(c)) {
                        specs.push(spec);
                    }
                }
                OpSpec::Project { exprs, .. } => {
                    let map = exprs
                        .iter()
                        .map(|e| match e {
                            Expr::Column(c) => to_scan(*c),
                            _ => None,
                        })
                        .collect();
                    from = Some(map);
                    leading = false;
                    continue;
                }
                OpSpec::HashJoin {
                    build_stage,
                    broadcast,
                    kind,
                    probe_keys,
                    build_keys,
                    build_schema,
                    range,
                    left_schema,
                    output_schema,
                    count_pairs,
                    ..
                } => {
                    let test = OpSpec::KeyFilter {
                        build_stage: *build_stage,
                        probe_keys: probe_keys.clone(),
                        build_keys: build_keys.clone(),
                        build_schema: build_schema.clone(),
                        max_build_rows: EARLY_KEY_FILTER_MAX_ROWS,
                    };
                    // A later join's test only on columns read already: the
                    // rows the tests before it keep are few, and a column
                    // more would be decoded whole for them.
                    let read = columns_of(&specs);
                    let test = with_columns(&test, &|c| to_scan(c)).filter(|t| {
                        joins == 0 || columns_of(std::slice::from_ref(t)).is_subset(&read)
                    });
                    if let Some(test) = test.filter(|_| {
                        *broadcast
                            && range.is_none()
                            && drops_unmatched_probe_rows(*kind)
                            && !probe_keys.is_empty()
                    }) {
                        specs.push(test);
                    }
                    joins += 1;
                    // Joins whose output starts with the probe row's columns.
                    if *count_pairs
                        || !matches!(
                            kind,
                            JoinKind::Inner
                                | JoinKind::Semi
                                | JoinKind::Anti
                                | JoinKind::Left
                                | JoinKind::Mark
                        )
                    {
                        break;
                    }
                    let probe_width = left_schema.fields().len();
                    let map = (0..output_schema.fields().len())
                        .map(|c| if c < probe_width { to_scan(c) } else { None })
                        .collect();
                    from = Some(map);
                    leading = false;
                    continue;
                }
                _ => break,
            }
            if leading {
                replaces += 1;
            }
        }
        let columns: Vec<usize> = columns_of(&specs).into_iter().collect();
        if columns.is_empty() {
            return None;
        }
        let specs = specs
            .iter()
            .filter_map(|spec| with_columns(spec, &|c| columns.binary_search(&c).ok()))
            .collect();
        Some(EarlyFilterPlan {
            replaces,
            columns,
            specs,
        })
    }

    pub fn instantiate(
        &self,
        partition: usize,
        tables: &dyn TaskContext,
    ) -> Result<Vec<Box<dyn Operator>>> {
        self.specs
            .iter()
            .map(|s| s.instantiate(partition, tables))
            .collect()
    }
}

/// A filter or key filter reading column `to(c)` where it read column `c`;
/// None when a column has no `to`.
fn with_columns(spec: &OpSpec, to: &dyn Fn(usize) -> Option<usize>) -> Option<OpSpec> {
    let map = |e: &Expr| {
        let mut columns = Vec::new();
        e.columns(&mut columns);
        columns
            .iter()
            .all(|&c| to(c).is_some())
            .then(|| e.clone().remap_columns(&|c| to(c).unwrap_or(c)))
    };
    Some(match spec {
        OpSpec::Filter { predicate, stats } => OpSpec::Filter {
            predicate: map(predicate)?,
            stats: stats.clone(),
        },
        OpSpec::KeyFilter {
            build_stage,
            probe_keys,
            build_keys,
            build_schema,
            max_build_rows,
        } => OpSpec::KeyFilter {
            build_stage: *build_stage,
            probe_keys: probe_keys.iter().map(map).collect::<Option<_>>()?,
            build_keys: build_keys.clone(),
            build_schema: build_schema.clone(),
            max_build_rows: *max_build_rows,
        },
        _ => return None,
    })
}

/// The columns the filters and key filters read.
fn columns_of(specs: &[OpSpec]) -> std::collections::BTreeSet<usize> {
    let mut columns = Vec::new();
    for e in specs.iter().flat_map(filter_exprs) {
        e.columns(&mut columns);
    }
    columns.into_iter().collect()
}

/// The expressions a filtering operator reads.
fn filter_exprs(spec: &OpSpec) -> Vec<&Expr> {
    match spec {
        OpSpec::Filter { predicate, .. } => vec![predicate],
        OpSpec::KeyFilter { probe_keys, .. } => probe_keys.iter().collect(),
        _ => vec![],
    }
}

/// Runs the early filter's operators on a batch of its columns: the rows
/// that pass and their row numbers in the batch. `metrics` are those of the
/// stage's operators the filter replaces.
pub(crate) fn apply(
    ops: &mut [Box<dyn Operator>],
    metrics: &mut [OpMetrics],
    batch: RecordBatch,
) -> Result<(RecordBatch, Vec<u32>)> {
    let width = batch.num_columns();
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new("row number", DataType::UInt32, false));
    let schema = Arc::new(Schema::new(fields));
    let rows = UInt32Array::from_iter_values(0..batch.num_rows() as u32);
    let mut columns = batch.columns().to_vec();
    columns.push(Arc::new(rows));
    let mut batches = vec![RecordBatch::try_new(schema.clone(), columns)?];
    for (k, op) in ops.iter_mut().enumerate() {
        let started = Instant::now();
        let mut out = Vec::new();
        for b in batches {
            op.push(b, &mut out)?;
        }
        if let Some(m) = metrics.get_mut(k) {
            m.time += started.elapsed();
            m.rows_out += out.iter().map(|b| b.num_rows()).sum::<usize>();
        }
        batches = out;
    }
    let passed = match batches.len() {
        0 => RecordBatch::new_empty(schema),
        1 => batches
            .pop()
            .unwrap_or_else(|| RecordBatch::new_empty(schema)),
        _ => arrow::compute::concat_batches(&schema, &batches)?,
    };
    let rows = passed.column(width).as_primitive::<UInt32Type>();
    let selected = rows.values().to_vec();
    debug_assert!(rows.null_count() == 0 && selected.is_sorted());
    Ok((passed.project(&(0..width).collect::<Vec<_>>())?, selected))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::filter::ConjunctStats;
    use crate::graph::{Sink, Source};
    use crate::plan::BinaryOp;
    use arrow::datatypes::SchemaRef;
    use datafusion_common::ScalarValue;

    fn schema(width: usize) -> SchemaRef {
        Arc::new(Schema::new(
            (0..width)
                .map(|i| Field::new(format!("c{i}"), DataType::Int64, true))
                .collect::<Vec<_>>(),
        ))
    }

    fn column_above(c: usize, v: i64) -> Expr {
        Expr::binary(
            BinaryOp::Gt,
            Expr::Column(c),
            Expr::Literal(ScalarValue::Int64(Some(v))),
        )
    }

    fn filter(predicate: Expr) -> OpSpec {
        OpSpec::Filter {
            predicate,
            stats: Arc::new(ConjunctStats::new(1)),
        }
    }

    fn project(columns: &[usize]) -> OpSpec {
        OpSpec::Project {
            exprs: columns.iter().map(|&c| Expr::Column(c)).collect(),
            schema: schema(columns.len()),
        }
    }

    /// A broadcast inner join of a probe side `width` wide with a build side
    /// of two columns, on probe column `key`.
    fn join(build_stage: usize, width: usize, key: usize) -> OpSpec {
        OpSpec::HashJoin {
            build_stage,
            broadcast: true,
            kind: JoinKind::Inner,
            probe_keys: vec![Expr::Column(key)],
            build_keys: vec![Expr::Column(0)],
            filter: None,
            left_schema: schema(width),
            build_schema: schema(2),
            output_schema: schema(width + 2),
            range: None,
            count_pairs: false,
        }
    }

    fn stage(ops: Vec<OpSpec>) -> Stage {
        Stage {
            id: 9,
            source: Source::Values(vec![]),
            ops,
            sink: Sink::Gather,
            partitions: 1,
            schema: schema(1),
        }
    }

    /// The early filter's specs, as (filter predicate or key test keys).
    fn specs(plan: &EarlyFilterPlan) -> Vec<String> {
        plan.specs
            .iter()
            .map(|s| match s {
                OpSpec::Filter { predicate, .. } => format!("filter {predicate:?}"),
                OpSpec::KeyFilter {
                    build_stage,
                    probe_keys,
                    ..
                } => format!("keys of {build_stage}: {probe_keys:?}"),
                _ => "other".into(),
            })
            .collect()
    }

    #[test]
    fn the_walk_takes_filters_and_key_tests_through_projections_and_joins() {
        // scan c0..c4 → Filter(c3 > 1) → Project(c4, c0, c3)
        //   → Join(stage 1 on c1 = scan c0) → Filter(c2 > 5 = scan c3)
        //   → Filter(c3 > 7: a build column) → Join(stage 2 on c2 = scan c3)
        //   → Join(stage 3 on c0 = scan c4: a column not read so far)
        let plan = EarlyFilterPlan::for_stage(&stage(vec![
            filter(column_above(3, 1)),
            project(&[4, 0, 3]),
            join(1, 3, 1),
            filter(column_above(2, 5)),
            filter(column_above(3, 7)),
            join(2, 5, 2),
            join(3, 7, 0),
        ]))
        .unwrap();
        assert_eq!(
            plan.replaces, 1,
            "only the first filter leaves the pipeline"
        );
        assert_eq!(plan.columns, vec![0, 3]);
        // over the columns read (c0, c3) at 0 and 1
        let want = [
            format!("filter {:?}", column_above(1, 1)),
            format!("keys of 1: {:?}", vec![Expr::Column(0)]),
            format!("filter {:?}", column_above(1, 5)),
            format!("keys of 2: {:?}", vec![Expr::Column(1)]),
        ];
        assert_eq!(specs(&plan), want);
    }

    #[test]
    fn the_walk_ends_at_an_operator_that_changes_the_rows() {
        let aggregate = OpSpec::Limit {
            skip: 0,
            fetch: Some(1),
        };
        let plan = EarlyFilterPlan::for_stage(&stage(vec![aggregate, filter(column_above(0, 1))]));
        assert!(plan.is_none());
        // a computed column is not the scan's
        let computed = OpSpec::Project {
            exprs: vec![column_above(0, 1)],
            schema: schema(1),
        };
        let plan = EarlyFilterPlan::for_stage(&stage(vec![computed, join(1, 1, 0)]));
        assert!(plan.is_none());
    }
}
