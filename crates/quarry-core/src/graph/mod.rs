//! The task graph: an optimized plan cut at pipeline breakers into stages. A
//! stage is a fused pipeline (source → operators → sink) run once per
//! partition; one run is a task. Exchanges join the sinks of one stage to the
//! sources of the next.

mod lower;
pub mod wire;

pub(crate) use lower::{drops_unmatched_probe_rows, EARLY_KEY_FILTER_MAX_ROWS};

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

pub use lower::{lower, lower_within};

use crate::catalog::{EarlyFilterStats, ScanPartition};
use crate::error::Result;
use crate::exec::aggregate::{AggMode, AggregateOp};
use crate::exec::filter::{ConjunctStats, FilterOp};
use crate::exec::join::{HashJoinOp, JoinBuild};
use crate::exec::key_filter::{KeyFilterOp, KeySet};
use crate::exec::operator::{LimitOp, Operator, ProjectOp};
use crate::exec::series::SeriesOp;
use crate::exec::sort::SortOp;
use crate::exec::window::WindowOp;
use crate::plan::{AggregateExpr, BinaryOp, Expr, JoinKind, SortKey, WindowExpr};
use crate::runtime::memory::MemoryPool;

#[derive(Debug)]
pub struct TaskGraph {
    /// Stages in an order where every stage comes after the stages it reads.
    pub stages: Vec<Stage>,
}

#[derive(Debug)]
pub struct Stage {
    pub id: usize,
    pub source: Source,
    pub ops: Vec<OpSpec>,
    pub sink: Sink,
    pub partitions: usize,
    /// Schema of the batches the sink receives.
    pub schema: SchemaRef,
}

pub enum Source {
    Scan {
        table: String,
        partitions: Vec<Arc<dyn ScanPartition>>,
        /// What the scan's early filters let pass (see `EarlyFilterStats`).
        early: Arc<EarlyFilterStats>,
    },
    Values(Vec<RecordBatch>),
    /// Partition p reads what every task of `stage` sent to partition p.
    Exchange {
        stage: usize,
    },
    /// The inputs of a UNION ALL, one after another: each is a stage and
    /// the number of partitions its forward sink holds; partition p reads
    /// the p-th of them all.
    Union {
        inputs: Vec<(usize, usize)>,
    },
}

impl Source {
    /// For a union, the input stage and its partition that partition `p`
    /// reads.
    pub fn union_part(inputs: &[(usize, usize)], p: usize) -> Option<(usize, usize)> {
        let mut first = 0;
        for &(stage, parts) in inputs {
            if p < first + parts {
                return Some((stage, p - first));
            }
            first += parts;
        }
        None
    }
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Scan {
                table, partitions, ..
            } => {
                write!(f, "Scan {table} ({} partitions)", partitions.len())
            }
            Source::Values(b) => write!(f, "Values ({} batches)", b.len()),
            Source::Exchange { stage } => write!(f, "Exchange from stage {stage}"),
            Source::Union { inputs } => {
                let stages: Vec<String> = inputs.iter().map(|(s, _)| s.to_string()).collect();
                write!(f, "Union of stages {}", stages.join(", "))
            }
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Sink {
    /// Hash-repartition rows by `keys` into `partitions` partitions.
    Hash {
        keys: Vec<Expr>,
        key_types: Vec<DataType>,
        partitions: usize,
    },
    /// Everything to a single partition.
    Gather,
    /// Partition p to partition p: the output of a subplan that several
    /// consumers read (each reads every partition; see `lower`).
    Forward { partitions: usize },
    /// The query's result, in partition order.
    Output,
}

impl Sink {
    /// Partitions of the stage that reads this sink.
    pub fn consumer_partitions(&self) -> usize {
        match self {
            Sink::Hash { partitions, .. } | Sink::Forward { partitions } => *partitions,
            Sink::Gather | Sink::Output => 1,
        }
    }
}

/// The description of an operator; each task instantiates its own.
/// What the tasks of a run learn as they go (`stats`, `skip_hint`) is not
/// part of it on the wire (see `wire`): each process learns its own.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum OpSpec {
    Filter {
        predicate: Expr,
        /// What the stage's tasks measured of each conjunct (their order).
        #[serde(skip, default)]
        stats: Arc<ConjunctStats>,
    },
    Project {
        exprs: Vec<Expr>,
        schema: SchemaRef,
    },
    Aggregate {
        mode: AggMode,
        group: Vec<Expr>,
        aggs: Vec<AggregateExpr>,
        input_schema: SchemaRef,
        output_schema: SchemaRef,
        arg_types: Vec<DataType>,
        /// Set by the first Partial task that finds its groups hardly fewer
        /// than its rows: the stage's other tasks then skip aggregating.
        #[serde(skip, default)]
        skip_hint: Arc<std::sync::atomic::AtomicBool>,
    },
    Sort {
        keys: Vec<SortKey>,
        fetch: Option<usize>,
        schema: SchemaRef,
    },
    Limit {
        skip: usize,
        fetch: Option<usize>,
    },
    /// Window functions over input sorted by their partition and order
    /// keys (see `exec::window`).
    Window {
        exprs: Vec<WindowExpr>,
        input_schema: SchemaRef,
        schema: SchemaRef,
    },
    /// Each row once per value of the series its arguments give (see
    /// `exec::series`).
    Series {
        args: Vec<Expr>,
        inclusive: bool,
        schema: SchemaRef,
    },
    /// Drop rows whose `probe_keys` are not among the keys of what
    /// `build_stage` produced (a runtime join filter, see `key_filter`).
    KeyFilter {
        build_stage: usize,
        probe_keys: Vec<Expr>,
        build_keys: Vec<Expr>,
        build_schema: SchemaRef,
        /// Past this many build rows no set is built and every row passes.
        max_build_rows: usize,
    },
    /// Probe a hash table built from the output of `build_stage`: all of it
    /// (broadcast) or the task's own partition of it.
    HashJoin {
        build_stage: usize,
        broadcast: bool,
        kind: JoinKind,
        probe_keys: Vec<Expr>,
        build_keys: Vec<Expr>,
        filter: Option<Expr>,
        left_schema: SchemaRef,
        build_schema: SchemaRef,
        output_schema: SchemaRef,
        /// A range join: the one probe key and build key are compared by
        /// this inequality (`probe op build`) instead of `=`.
        range: Option<BinaryOp>,
        /// Nothing reads the joined columns, only their number (see
        /// `HashJoinOp::counting_pairs`): the join emits batches without
        /// columns, one per probe batch, of as many rows as pairs.
        count_pairs: bool,
    },
}

/// What a task gets from the run it is part of: the build sides of its
/// joins and the memory budget (the partition store provides both).
pub trait TaskContext {
    fn memory(&self) -> &Arc<MemoryPool>;

    /// Where operators write their spill files.
    fn temp_dir(&self) -> &std::path::Path;

    /// The query's cancel flag, for operators whose work between batches
    /// is long (a large sort).
    fn cancel(&self) -> &Arc<std::sync::atomic::AtomicBool>;

    /// The build side of a hash join over `stage`'s output: shared by all
    /// tasks when `partition` is None (broadcast), else that partition's
    /// own. A hash table, or spill files when it does not fit the budget.
    /// With `range`, the key is compared by that inequality.
    fn hash_table(
        &self,
        stage: usize,
        partition: Option<usize>,
        schema: &SchemaRef,
        keys: &[Expr],
        range: Option<BinaryOp>,
    ) -> Result<JoinBuild>;

    /// The distinct `keys` of all of `stage`'s output, built once and
    /// shared; None when that is not cheap (the output spilled or has more
    /// than `max_rows` rows).
    fn key_set(
        &self,
        stage: usize,
        schema: &SchemaRef,
        keys: &[Expr],
        max_rows: usize,
    ) -> Result<Option<Arc<KeySet>>>;
}

impl Stage {
    /// The stages whose output this stage reads.
    pub fn inputs(&self) -> Vec<usize> {
        let mut v = Vec::new();
        match &self.source {
            Source::Exchange { stage } => v.push(*stage),
            Source::Union { inputs } => v.extend(inputs.iter().map(|(s, _)| *s)),
            Source::Scan { .. } | Source::Values(_) => {}
        }
        for op in &self.ops {
            if let OpSpec::HashJoin { build_stage, .. } | OpSpec::KeyFilter { build_stage, .. } = op
            {
                v.push(*build_stage);
            }
        }
        v
    }
}

impl OpSpec {
    pub fn instantiate(
        &self,
        partition: usize,
        tables: &dyn TaskContext,
    ) -> Result<Box<dyn Operator>> {
        Ok(match self {
            OpSpec::Filter { predicate, stats } => {
                Box::new(FilterOp::new(predicate.clone(), stats.clone()))
            }
            OpSpec::Project { exprs, schema } => Box::new(ProjectOp {
                exprs: exprs.clone(),
                schema: schema.clone(),
            }),
            OpSpec::Aggregate {
                mode,
                group,
                aggs,
                input_schema,
                output_schema,
                arg_types,
                skip_hint,
            } => Box::new(
                AggregateOp::new(
                    *mode,
                    group.clone(),
                    aggs.clone(),
                    input_schema,
                    output_schema.clone(),
                    arg_types,
                    tables.memory(),
                    tables.temp_dir().to_path_buf(),
                )?
                .with_skip_hint(skip_hint.clone()),
            ),
            OpSpec::Sort {
                keys,
                fetch,
                schema,
            } => Box::new(
                SortOp::new(
                    keys.clone(),
                    *fetch,
                    schema.clone(),
                    tables.memory(),
                    tables.temp_dir(),
                )
                .with_cancel(tables.cancel().clone()),
            ),
            OpSpec::Limit { skip, fetch } => Box::new(LimitOp::new(*skip, *fetch)),
            OpSpec::Series {
                args,
                inclusive,
                schema,
            } => Box::new(SeriesOp::new(args.clone(), *inclusive, schema.clone())),
            OpSpec::Window {
                exprs,
                input_schema,
                schema,
            } => Box::new(
                WindowOp::new(
                    exprs.clone(),
                    input_schema.clone(),
                    schema.clone(),
                    tables.memory(),
                )
                .with_cancel(tables.cancel().clone()),
            ),
            OpSpec::KeyFilter {
                build_stage,
                probe_keys,
                build_keys,
                build_schema,
                max_build_rows,
            } => Box::new(KeyFilterOp::new(
                tables.key_set(*build_stage, build_schema, build_keys, *max_build_rows)?,
                probe_keys.clone(),
            )),
            OpSpec::HashJoin {
                build_stage,
                broadcast,
                kind,
                probe_keys,
                build_keys,
                filter,
                left_schema,
                build_schema,
                output_schema,
                range,
                count_pairs,
            } => {
                let part = (!broadcast).then_some(partition);
                let build =
                    tables.hash_table(*build_stage, part, build_schema, build_keys, *range)?;
                let join = HashJoinOp::with_build(
                    *kind,
                    build,
                    probe_keys.clone(),
                    filter.clone(),
                    left_schema.clone(),
                    output_schema.clone(),
                    tables.memory(),
                    tables.temp_dir(),
                )?;
                Box::new(if *count_pairs {
                    join.counting_pairs()?
                } else {
                    join
                })
            }
        })
    }

    /// How EXPLAIN names the operator: `FinalAggregate(1 keys)`, `Sort`, …
    pub fn name(&self) -> String {
        match self {
            OpSpec::Filter { .. } => "Filter".into(),
            OpSpec::Project { .. } => "Project".into(),
            OpSpec::Series {
                inclusive: true, ..
            } => "Series(generate_series)".into(),
            OpSpec::Series { .. } => "Series(range)".into(),
            OpSpec::Aggregate { mode, group, .. } => {
                format!("{mode:?}Aggregate({} keys)", group.len())
            }
            OpSpec::Sort { fetch: Some(k), .. } => format!("TopK({k})"),
            OpSpec::Sort { .. } => "Sort".into(),
            OpSpec::HashJoin {
                build_stage,
                broadcast,
                kind,
                range,
                count_pairs,
                ..
            } => format!(
                "{kind:?}Join({}{} build of stage {build_stage}{})",
                match range {
                    Some(op) => format!("range {}, ", op.symbol()),
                    None => String::new(),
                },
                if *broadcast {
                    "broadcast"
                } else {
                    "partitioned"
                },
                if *count_pairs { ", pairs counted" } else { "" }
            ),
            OpSpec::KeyFilter { build_stage, .. } => {
                format!("KeyFilter(keys of stage {build_stage})")
            }
            OpSpec::Window { exprs, .. } => match exprs.len() {
                1 => "Window(1 function)".to_string(),
                n => format!("Window({n} functions)"),
            },
            OpSpec::Limit { skip, fetch } => match fetch {
                Some(f) => format!("Limit(skip={skip}, fetch={f})"),
                None => format!("Limit(skip={skip})"),
            },
        }
    }
}

impl TaskGraph {
    /// The graph with what each stage and operator did in a run.
    pub fn display_with_metrics(&self, stats: &crate::runtime::RunStats) -> String {
        let mut out = String::new();
        for s in &self.stages {
            let rows_in = stats.stage_rows_in.get(s.id).copied().unwrap_or(0);
            let mut pipeline = vec![format!("{:?} ({rows_in} rows)", s.source)];
            for (k, op) in s.ops.iter().enumerate() {
                let m = stats
                    .op_metrics
                    .get(s.id)
                    .and_then(|v| v.get(k))
                    .copied()
                    .unwrap_or_default();
                let spilled = if m.spilled.files > 0 {
                    format!(
                        ", spilled {} in {} files",
                        crate::runtime::memory::format_bytes(m.spilled.bytes as usize),
                        m.spilled.files
                    )
                } else {
                    String::new()
                };
                pipeline.push(format!(
                    "{} ({} rows, {:.1?}{spilled})",
                    op.name(),
                    m.rows_out,
                    m.time
                ));
            }
            out.push_str(&format!(
                "Stage {} [{} tasks]: {} ⇒ {}\n",
                s.id,
                s.partitions,
                pipeline.join(" → "),
                s.sink.describe()
            ));
        }
        out
    }
}

impl Sink {
    fn describe(&self) -> String {
        match self {
            Sink::Hash {
                keys, partitions, ..
            } => format!("hash({} keys) → {partitions} partitions", keys.len()),
            Sink::Gather => "gather → 1 partition".into(),
            Sink::Forward { partitions } => format!("forward → {partitions} partitions"),
            Sink::Output => "output".into(),
        }
    }
}

impl fmt::Display for TaskGraph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.stages {
            let ops: Vec<String> = s.ops.iter().map(|o| o.name()).collect();
            let sink = s.sink.describe();
            let mut pipeline = vec![format!("{:?}", s.source)];
            pipeline.extend(ops);
            writeln!(
                f,
                "Stage {} [{} tasks]: {} ⇒ {sink}",
                s.id,
                s.partitions,
                pipeline.join(" → ")
            )?;
        }
        Ok(())
    }
}
