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
use crate::plan::Expr;

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
    /// The early filter of a scan stage: its leading filters, the filters
    /// after them and column projections, and the key test of a broadcast
    /// join found on the way (those after a projection, and the join, also
    /// stay in the pipeline, to which they are cheap: few rows reach them).
    pub fn for_stage(stage: &Stage) -> Option<Self> {
        let mut replaces = 0;
        let mut specs = Vec::new();
        // Where each column of the current operator's input comes from in
        // the scan's output (None: the same place).
        let mut from: Option<Vec<usize>> = None;
        let to_scan = |e: &Expr, from: &Option<Vec<usize>>| match from {
            Some(map) => e
                .clone()
                .remap_columns(&|c| map.get(c).copied().unwrap_or(c)),
            None => e.clone(),
        };
        for op in &stage.ops {
            match op {
                OpSpec::Filter { predicate, stats } => specs.push(OpSpec::Filter {
                    predicate: to_scan(predicate, &from),
                    stats: stats.clone(),
                }),
                OpSpec::KeyFilter {
                    build_stage,
                    probe_keys,
                    build_keys,
                    build_schema,
                    max_build_rows,
                } => specs.push(OpSpec::KeyFilter {
                    build_stage: *build_stage,
                    probe_keys: probe_keys.iter().map(|k| to_scan(k, &from)).collect(),
                    build_keys: build_keys.clone(),
                    build_schema: build_schema.clone(),
                    max_build_rows: *max_build_rows,
                }),
                OpSpec::Project { exprs, .. } => {
                    let Some(columns) = exprs
                        .iter()
                        .map(|e| match e {
                            Expr::Column(c) => Some(match &from {
                                Some(map) => map.get(*c).copied().unwrap_or(*c),
                                None => *c,
                            }),
                            _ => None,
                        })
                        .collect::<Option<Vec<usize>>>()
                    else {
                        break;
                    };
                    from = Some(columns);
                    continue;
                }
                OpSpec::HashJoin {
                    build_stage,
                    broadcast: true,
                    kind,
                    probe_keys,
                    build_keys,
                    build_schema,
                    range: None,
                    ..
                } if drops_unmatched_probe_rows(*kind) && !probe_keys.is_empty() => {
                    specs.push(OpSpec::KeyFilter {
                        build_stage: *build_stage,
                        probe_keys: probe_keys.iter().map(|k| to_scan(k, &from)).collect(),
                        build_keys: build_keys.clone(),
                        build_schema: build_schema.clone(),
                        max_build_rows: EARLY_KEY_FILTER_MAX_ROWS,
                    });
                    break;
                }
                _ => break,
            }
            if from.is_none() {
                replaces += 1;
            }
        }
        let mut columns = Vec::new();
        for spec in &specs {
            for e in filter_exprs(spec) {
                e.columns(&mut columns);
            }
        }
        columns.sort_unstable();
        columns.dedup();
        if columns.is_empty() {
            return None;
        }
        let at = |c: usize| columns.binary_search(&c).unwrap_or(0);
        let specs = specs
            .into_iter()
            .map(|spec| match spec {
                OpSpec::Filter { predicate, stats } => OpSpec::Filter {
                    predicate: predicate.remap_columns(&at),
                    stats,
                },
                OpSpec::KeyFilter {
                    build_stage,
                    probe_keys,
                    build_keys,
                    build_schema,
                    max_build_rows,
                } => OpSpec::KeyFilter {
                    build_stage,
                    probe_keys: probe_keys
                        .into_iter()
                        .map(|k| k.remap_columns(&at))
                        .collect(),
                    build_keys,
                    build_schema,
                    max_build_rows,
                },
                other => other,
            })
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
