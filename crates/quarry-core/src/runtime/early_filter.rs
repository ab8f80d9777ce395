//! Filtering a scan's rows before all of its columns are decoded (late
//! materialisation): a scan stage's leading filters, and the key test of a
//! broadcast join that follows them, run inside the scan on the columns they
//! read; the scan then decodes its other columns only at the rows that
//! passed (`ScanPartition::read_filtered`).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Array, AsArray, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema, UInt32Type};
use arrow::record_batch::RecordBatch;

use super::task::OpMetrics;
use crate::error::Result;
use crate::exec::filter::ConjunctStats;
use crate::exec::operator::Operator;
use crate::graph::{
    drops_unmatched_probe_rows, OpSpec, Stage, TaskContext, EARLY_KEY_FILTER_MAX_ROWS,
};
use crate::plan::{Expr, JoinKind};

pub(crate) struct EarlyFilterPlan {
    /// How many of the stage's leading operators the early filter runs in
    /// their place.
    pub replaces: usize,
    /// The steps, in the order they run.
    steps: Vec<EarlyStep>,
}

/// One step of an early filter: the scan decodes its columns at the rows the
/// steps before it kept.
struct EarlyStep {
    /// The scan's output columns the step reads first.
    columns: Vec<usize>,
    /// Its filters, over the columns of the steps up to it (in step order)
    /// followed by the row number.
    pieces: Vec<Piece>,
}

/// A filter of an early filter: one conjunct of a filter of the stage, or a
/// join's key test.
struct Piece {
    spec: OpSpec,
    /// The leading operator of the stage it is (a part of), when it is one
    /// the early filter replaces; `last`: the last part of it to run.
    replaces: Option<usize>,
    last: bool,
}

impl EarlyFilterPlan {
    /// The early filter of a scan stage: its leading filters, and the
    /// filters and broadcast joins' key tests further on whose columns come
    /// straight from the scan, through column projections and joins that
    /// keep the probe row's columns (those further on also stay in the
    /// pipeline, cheap there: few rows reach them). Filters are split into
    /// their conjuncts, so that each can run as soon as its columns are read.
    pub fn for_stage(stage: &Stage) -> Option<Self> {
        let mut replaces = 0;
        let mut leading = true;
        // (filters over the scan's columns, the leading operator each is of)
        let mut pieces: Vec<(OpSpec, Option<usize>)> = Vec::new();
        // Where each column of the current operator's input comes from in
        // the scan's output (None: from elsewhere); `from` None: the same.
        let mut from: Option<Vec<Option<usize>>> = None;
        for op in &stage.ops {
            let to_scan = |c: usize| match &from {
                Some(map) => map.get(c).copied().flatten(),
                None => Some(c),
            };
            let origin = leading.then_some(replaces);
            match op {
                OpSpec::Filter { predicate, .. } => {
                    // (a conjunct whose columns do not all come from the scan
                    // stays in the pipeline only; a leading filter's all do)
                    for conjunct in predicate.clone().split_conjunction() {
                        let spec = OpSpec::Filter {
                            predicate: conjunct,
                            stats: Arc::new(ConjunctStats::new(1)),
                        };
                        if let Some(spec) = with_columns(&spec, &|c| to_scan(c)) {
                            pieces.push((spec, origin));
                        }
                    }
                }
                OpSpec::KeyFilter { .. } => {
                    if let Some(spec) = with_columns(op, &|c| to_scan(c)) {
                        pieces.push((spec, origin));
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
                    if let Some(test) = with_columns(&test, &|c| to_scan(c)).filter(|_| {
                        *broadcast
                            && range.is_none()
                            && drops_unmatched_probe_rows(*kind)
                            && !probe_keys.is_empty()
                    }) {
                        pieces.push((test, None));
                    }
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
        let steps = into_steps(pieces)?;
        Some(EarlyFilterPlan { replaces, steps })
    }

    /// Per step, the scan's output columns it reads first.
    pub fn step_columns(&self) -> Vec<Vec<usize>> {
        self.steps.iter().map(|s| s.columns.clone()).collect()
    }

    /// Per step, its operators.
    pub fn instantiate(
        &self,
        partition: usize,
        tables: &dyn TaskContext,
    ) -> Result<Vec<Vec<Box<dyn Operator>>>> {
        self.steps
            .iter()
            .map(|step| {
                step.pieces
                    .iter()
                    .map(|p| p.spec.instantiate(partition, tables))
                    .collect()
            })
            .collect()
    }

    /// Runs step `k`'s operators (`ops`, from `instantiate`) on a batch of
    /// its columns: the rows that pass and their positions in the batch.
    /// `metrics` are those of the stage's operators the filter replaces.
    pub fn apply(
        &self,
        k: usize,
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
        let pieces = self.steps.get(k).map_or(&[][..], |s| &s.pieces[..]);
        for (op, piece) in ops.iter_mut().zip(pieces) {
            let started = Instant::now();
            let mut out = Vec::new();
            for b in batches {
                op.push(b, &mut out)?;
            }
            if let Some(m) = piece.replaces.and_then(|i| metrics.get_mut(i)) {
                m.time += started.elapsed();
                if piece.last {
                    m.rows_out += out.iter().map(|b| b.num_rows()).sum::<usize>();
                }
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
}

/// Groups the filters into steps: next, of the filters left, the first of
/// those that read the fewest columns not read yet gives the step its
/// columns, and the step runs every filter whose columns are then all read
/// (in the stage's order). A filter on one column thus goes before one
/// comparing two, and the second column of that is decoded only at the rows
/// the first kept. None when no filter reads a column.
fn into_steps(pieces: Vec<(OpSpec, Option<usize>)>) -> Option<Vec<EarlyStep>> {
    let columns_of_piece = |spec: &OpSpec| columns_of(std::slice::from_ref(spec));
    let mut pending: Vec<(OpSpec, Option<usize>, BTreeSet<usize>)> = pieces
        .into_iter()
        .map(|(spec, origin)| {
            let columns = columns_of_piece(&spec);
            (spec, origin, columns)
        })
        .collect();
    if pending.iter().all(|(_, _, columns)| columns.is_empty()) {
        return None;
    }
    let mut read: Vec<usize> = Vec::new();
    let mut steps: Vec<EarlyStep> = Vec::new();
    // (the filters, in the step's order, over the scan's columns)
    let mut step_pieces: Vec<Vec<(OpSpec, Option<usize>)>> = Vec::new();
    while !pending.is_empty() {
        let unread =
            |columns: &BTreeSet<usize>| columns.iter().filter(|c| !read.contains(c)).count();
        // (a filter of no columns runs in the first step)
        let next = pending
            .iter()
            .min_by_key(|(_, _, columns)| match unread(columns) {
                0 => usize::MAX,
                n => n,
            })?;
        let new: Vec<usize> = next
            .2
            .iter()
            .filter(|c| !read.contains(c))
            .copied()
            .collect();
        read.extend(&new);
        let (ready, rest): (Vec<_>, Vec<_>) = pending
            .into_iter()
            .partition(|(_, _, columns)| columns.iter().all(|c| read.contains(c)));
        pending = rest;
        steps.push(EarlyStep {
            columns: new,
            pieces: Vec::new(),
        });
        step_pieces.push(ready.into_iter().map(|(s, o, _)| (s, o)).collect());
    }
    // Each filter over the step's input: the columns read so far, in order.
    for (k, pieces) in step_pieces.into_iter().enumerate() {
        let layout: Vec<usize> = steps[..=k].iter().flat_map(|s| s.columns.clone()).collect();
        steps[k].pieces = pieces
            .into_iter()
            .filter_map(|(spec, replaces)| {
                let spec = with_columns(&spec, &|c| layout.iter().position(|&l| l == c))?;
                Some(Piece {
                    spec,
                    replaces,
                    last: false,
                })
            })
            .collect();
    }
    // The last part of each replaced operator to run counts its rows out.
    let mut seen = BTreeSet::new();
    for piece in steps
        .iter_mut()
        .rev()
        .flat_map(|s| s.pieces.iter_mut().rev())
    {
        if let Some(i) = piece.replaces {
            piece.last = seen.insert(i);
        }
    }
    Some(steps)
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
fn columns_of(specs: &[OpSpec]) -> BTreeSet<usize> {
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

    /// The early filter's steps: each one's columns, then its filters
    /// (predicate or key test keys).
    fn steps(plan: &EarlyFilterPlan) -> Vec<(Vec<usize>, Vec<String>)> {
        plan.steps
            .iter()
            .map(|step| {
                let pieces = step
                    .pieces
                    .iter()
                    .map(|p| match &p.spec {
                        OpSpec::Filter { predicate, .. } => format!("filter {predicate:?}"),
                        OpSpec::KeyFilter {
                            build_stage,
                            probe_keys,
                            ..
                        } => format!("keys of {build_stage}: {probe_keys:?}"),
                        _ => "other".into(),
                    })
                    .collect();
                (step.columns.clone(), pieces)
            })
            .collect()
    }

    #[test]
    fn the_walk_takes_filters_and_key_tests_through_projections_and_joins() {
        // scan c0..c4 → Filter(c3 > 1) → Project(c4, c0, c3)
        //   → Join(stage 1 on c1 = scan c0) → Filter(c2 > 5 = scan c3)
        //   → Filter(c3 > 7: a build column) → Join(stage 2 on c2 = scan c3)
        //   → Join(stage 3 on c0 = scan c4)
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
        // Scan c3 first, with all that reads only it; then c0 at the rows
        // kept, then c4. Each filter reads its step's input: the columns
        // read so far, in that order.
        let want = vec![
            (
                vec![3],
                vec![
                    format!("filter {:?}", column_above(0, 1)),
                    format!("filter {:?}", column_above(0, 5)),
                    format!("keys of 2: {:?}", vec![Expr::Column(0)]),
                ],
            ),
            (
                vec![0],
                vec![format!("keys of 1: {:?}", vec![Expr::Column(1)])],
            ),
            (
                vec![4],
                vec![format!("keys of 3: {:?}", vec![Expr::Column(2)])],
            ),
        ];
        assert_eq!(steps(&plan), want);
    }

    #[test]
    fn conjuncts_on_one_column_go_before_those_comparing_two() {
        // Filter(c0 < c1 AND c2 > 1 AND c1 > 2 AND c2 > 3): c2 first, with
        // both its conjuncts (the first conjunct reads two columns not read
        // yet); then c1, one more; then c0 for the comparison.
        let less = Expr::binary(BinaryOp::Lt, Expr::Column(0), Expr::Column(1));
        let predicate = Expr::and_all(vec![
            less,
            column_above(2, 1),
            column_above(1, 2),
            column_above(2, 3),
        ]);
        let plan = EarlyFilterPlan::for_stage(&stage(vec![filter(predicate)])).unwrap();
        assert_eq!(plan.replaces, 1);
        let columns: Vec<_> = plan.steps.iter().map(|s| s.columns.clone()).collect();
        assert_eq!(columns, vec![vec![2], vec![1], vec![0]]);
        let at = |k: usize| steps(&plan)[k].1.clone();
        assert_eq!(
            at(0),
            vec![
                format!("filter {:?}", column_above(0, 1)),
                format!("filter {:?}", column_above(0, 3))
            ]
        );
        assert_eq!(at(1), vec![format!("filter {:?}", column_above(1, 2))]);
        let less = Expr::binary(BinaryOp::Lt, Expr::Column(2), Expr::Column(1));
        assert_eq!(at(2), vec![format!("filter {less:?}")]);
        // only the filter's last part to run counts its rows
        let last: Vec<Vec<bool>> = plan
            .steps
            .iter()
            .map(|s| s.pieces.iter().map(|p| p.last).collect())
            .collect();
        assert_eq!(last, vec![vec![false, false], vec![false], vec![true]]);
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
