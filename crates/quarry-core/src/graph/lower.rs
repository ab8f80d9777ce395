//! Lowering a logical plan into a task graph.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::{OpSpec, Sink, Source, Stage, TaskGraph};
use crate::error::Result;
use crate::exec::aggregate::{state_fields, AggMode};
use crate::exec::filter::ConjunctStats;
use crate::optimizer::cardinality::{estimate, known_groups, share_of_table};
use crate::plan::repeated::{repeated_subplans, same_plan};
use crate::plan::{AggFunc, AggregateExpr, BinaryOp, Expr, JoinKind, LogicalPlan, SortKey};

/// Build sides estimated at up to this many rows are broadcast: one shared
/// hash table, and the probe side streams through without a repartition.
const BROADCAST_ROWS: f64 = 2_000_000.0;

/// A larger build side is broadcast when it fits its share of the memory
/// limit and the probe side has at least this many times its rows.
const BROADCAST_PROBE_RATIO: f64 = 4.0;

/// A partitioned join filters its probe rows by the build side's keys when
/// the build side is estimated at most 1/KEY_FILTER_RATIO of the probe side.
const KEY_FILTER_RATIO: f64 = 4.0;

/// Joins for which a probe row whose key the build side lacks produces
/// nothing, so that it can be dropped before the join.
pub(crate) fn drops_unmatched_probe_rows(kind: JoinKind) -> bool {
    matches!(
        kind,
        JoinKind::Inner
            | JoinKind::Semi
            | JoinKind::Right
            | JoinKind::RightSemi
            | JoinKind::RightAnti
    )
}

/// A broadcast join whose build side is estimated at most this many rows,
/// and at most this share of the table its key comes from (so that most
/// probe rows find no match), drops the probe rows it cannot match before
/// the probe side's filters run (see `before_filters`).
const EARLY_KEY_FILTER_MAX_BUILD_ROWS: f64 = 100_000.0;
const EARLY_KEY_FILTER_MAX_SHARE: f64 = 0.1;
/// ... and when the build side turns out larger than this many rows (the
/// estimate was wrong: TPC-H Q21's orders with status 'F' are half of all
/// orders), no set is built: one task would build it while the others
/// wait, for a filter that keeps half the rows. (Also the limit of the key
/// test a scan runs for a broadcast join, see `runtime::early_filter`: a
/// stage's key filters share one set per build stage.)
pub(crate) const EARLY_KEY_FILTER_MAX_ROWS: usize = 1 << 18;

/// A runtime join filter of a partitioned join is built only over at most
/// this many build rows: past that its set costs more than it is likely to
/// save.
const KEY_FILTER_MAX_ROWS: usize = 1 << 20;

/// Where in `ops` a key filter on `probe_keys` (columns of the output of
/// `ops`) can go before the filters at its end, through the projections
/// among them, and its keys there; None when no filter would be passed or
/// a key is not a column there.
///
/// Why: a broadcast join drops the probe rows without a match only after
/// the filters before it have looked at every row. When the build side is
/// small (TPC-H Q19: some hundred parts against all of lineitem), testing
/// the key first leaves the filters, which compare strings, few rows.
fn before_filters(ops: &[OpSpec], probe_keys: &[Expr]) -> Option<(usize, Vec<Expr>)> {
    let mut keys = probe_keys.to_vec();
    let mut at = ops.len();
    let mut passes_filter = false;
    while at > 0 {
        match &ops[at - 1] {
            OpSpec::Filter { .. } => passes_filter = true,
            OpSpec::Project { exprs, .. } => {
                let below: Option<Vec<Expr>> = keys
                    .iter()
                    .map(|k| match k {
                        Expr::Column(c) => match exprs.get(*c) {
                            Some(e @ Expr::Column(_)) => Some(e.clone()),
                            _ => None,
                        },
                        _ => None,
                    })
                    .collect();
                match below {
                    Some(b) => keys = b,
                    None => break,
                }
            }
            _ => break,
        }
        at -= 1;
    }
    (passes_filter && keys.iter().all(|k| matches!(k, Expr::Column(_)))).then_some((at, keys))
}

/// The most partitions `join_partitions` asks for: past that, a partition
/// over its share spills (grace hash join) rather than multiply tasks.
const MAX_JOIN_PARTITIONS: f64 = 256.0;

/// The size a final aggregate's table per partition is planned for.
const AGGREGATE_TABLE_BYTES: f64 = (16 << 20) as f64;

/// The most partitions `aggregate_partitions` asks for.
const MAX_AGGREGATE_PARTITIONS: f64 = 64.0;

/// A stage under construction: its source, operators so far and schema.
struct Pipeline {
    source: Source,
    ops: Vec<OpSpec>,
    partitions: usize,
    schema: SchemaRef,
}

struct Lowering<'p> {
    stages: Vec<Stage>,
    /// Subplans that occur more than once, and once lowered, the stage
    /// that holds their output (see `shared`).
    shared: Vec<(&'p LogicalPlan, Option<usize>)>,
    target_partitions: usize,
    /// Bytes of build side one partition of a partitioned hash join should
    /// hold at most (None: no limit).
    partition_bytes: Option<f64>,
    memory_limit: Option<f64>,
}

/// Cuts `plan` into stages; hash exchanges use `target_partitions` partitions.
pub fn lower(plan: &LogicalPlan, target_partitions: usize) -> Result<TaskGraph> {
    lower_within(plan, target_partitions, None)
}

/// As `lower`, and a partitioned hash join whose build side is estimated
/// larger than its share of `memory_limit` gets more partitions (a multiple
/// of `target_partitions`), so that each partition's hash table fits, as a
/// rule, without spilling.
pub fn lower_within(
    plan: &LogicalPlan,
    target_partitions: usize,
    memory_limit: Option<usize>,
) -> Result<TaskGraph> {
    let target_partitions = target_partitions.max(1);
    let mut l = Lowering {
        stages: vec![],
        shared: repeated_subplans(plan)
            .into_iter()
            .map(|p| (p, None))
            .collect(),
        target_partitions,
        // `target_partitions` tables may be built at once, beside buffered
        // exchanges: give each a quarter of its share.
        partition_bytes: memory_limit.map(|m| m as f64 / (4 * target_partitions) as f64),
        memory_limit: memory_limit.map(|m| m as f64),
    };
    let root = l.lower(plan)?;
    l.close(root, Sink::Output);
    Ok(TaskGraph { stages: l.stages })
}

impl<'p> Lowering<'p> {
    /// Ends `p` with `sink` and starts the pipeline that reads from it.
    fn exchange(&mut self, p: Pipeline, sink: Sink) -> Pipeline {
        let partitions = sink.consumer_partitions();
        let schema = p.schema.clone();
        let stage = self.close(p, sink);
        Pipeline {
            source: Source::Exchange { stage },
            ops: vec![],
            partitions,
            schema,
        }
    }

    fn close(&mut self, p: Pipeline, sink: Sink) -> usize {
        let id = self.stages.len();
        self.stages.push(Stage {
            id,
            source: p.source,
            ops: p.ops,
            sink,
            partitions: p.partitions,
            schema: p.schema,
        });
        id
    }

    /// A hash sink on `keys`, or a gather when there are none.
    fn hash_sink(&self, keys: Vec<Expr>, schema: &Schema) -> Result<Sink> {
        if keys.is_empty() {
            return Ok(Sink::Gather);
        }
        self.partitioned_sink(keys, schema)
    }

    fn lower(&mut self, plan: &'p LogicalPlan) -> Result<Pipeline> {
        let Some(i) = self.shared.iter().position(|(p, _)| same_plan(p, plan)) else {
            return self.lower_node(plan);
        };
        // A subplan that occurs more than once is computed by the first
        // occurrence into a stage of its own; every occurrence reads it.
        let stage = match self.shared[i].1 {
            Some(stage) => stage,
            None => {
                let p = self.lower_node(plan)?;
                let sink = Sink::Forward {
                    partitions: p.partitions,
                };
                let stage = self.close(p, sink);
                self.shared[i].1 = Some(stage);
                stage
            }
        };
        let s = &self.stages[stage];
        Ok(Pipeline {
            source: Source::Exchange { stage },
            ops: vec![],
            partitions: s.sink.consumer_partitions(),
            schema: s.schema.clone(),
        })
    }

    fn lower_node(&mut self, plan: &'p LogicalPlan) -> Result<Pipeline> {
        Ok(match plan {
            LogicalPlan::Scan(scan) => {
                let partitions = scan.provider.partitions(&scan.projection, &scan.filters)?;
                Pipeline {
                    partitions: partitions.len(),
                    source: Source::Scan {
                        table: scan.table_name.clone(),
                        partitions,
                        early: Default::default(),
                    },
                    ops: vec![],
                    schema: scan.schema.clone(),
                }
            }
            LogicalPlan::Values { schema, batches } => Pipeline {
                source: Source::Values(batches.clone()),
                ops: vec![],
                partitions: 1,
                schema: schema.clone(),
            },
            LogicalPlan::Filter { input, predicate } => {
                let mut p = self.lower(input)?;
                p.ops.push(OpSpec::Filter {
                    predicate: predicate.clone(),
                    stats: Arc::new(ConjunctStats::new(
                        predicate.clone().split_conjunction().len(),
                    )),
                });
                p
            }
            LogicalPlan::Project {
                input,
                exprs,
                schema,
            } => {
                let mut p = self.lower(input)?;
                p.ops.push(OpSpec::Project {
                    exprs: exprs.clone(),
                    schema: schema.clone(),
                });
                p.schema = schema.clone();
                p
            }
            LogicalPlan::Series {
                input,
                args,
                inclusive,
                schema,
            } => {
                let mut p = self.lower(input)?;
                p.ops.push(OpSpec::Series {
                    args: args.clone(),
                    inclusive: *inclusive,
                    schema: schema.clone(),
                });
                p.schema = schema.clone();
                p
            }
            LogicalPlan::Aggregate {
                input,
                group,
                aggs,
                schema,
            } => {
                let p = self.lower(input)?;
                // (a count of groups that statistics do not bound is no
                // reason for more partitions)
                let groups = known_groups(input, group).map(|_| estimate(plan).rows);
                self.lower_aggregate(p, group, aggs, schema.clone(), groups)?
            }
            LogicalPlan::Sort { input, keys, fetch } => {
                let mut p = self.lower(input)?;
                let sort = OpSpec::Sort {
                    keys: keys.clone(),
                    fetch: *fetch,
                    schema: p.schema.clone(),
                };
                if p.partitions > 1 {
                    // Sort (or top-k) each partition, then merge the runs.
                    p.ops.push(sort.clone());
                    p = self.exchange(p, Sink::Gather);
                }
                p.ops.push(sort);
                p
            }
            LogicalPlan::Join {
                left,
                right,
                kind,
                on,
                filter,
                schema,
            } => self.lower_join(left, right, *kind, on, filter.as_ref(), schema.clone())?,
            LogicalPlan::Union { inputs, schema } => {
                // Each input runs in stages of its own and forwards its
                // partitions; the union's partitions are all of them.
                let mut parts = Vec::new();
                for input in inputs {
                    let p = self.lower(input)?;
                    let partitions = p.partitions;
                    let stage = self.close(p, Sink::Forward { partitions });
                    parts.push((stage, partitions));
                }
                Pipeline {
                    partitions: parts.iter().map(|(_, n)| n).sum(),
                    source: Source::Union { inputs: parts },
                    ops: vec![],
                    schema: schema.clone(),
                }
            }
            LogicalPlan::Window {
                input,
                exprs,
                schema,
            } => {
                let mut p = self.lower(input)?;
                let (partition_by, order_by) = match exprs.first() {
                    Some(w) => (w.partition_by.clone(), w.order_by.clone()),
                    None => (vec![], vec![]),
                };
                // The rows of a window partition meet in one task: hashed
                // by the partition keys (several tasks in parallel), or all
                // gathered when there are none.
                if p.partitions > 1 {
                    let sink = if partition_by.is_empty() {
                        Sink::Gather
                    } else {
                        self.partitioned_sink(partition_by.clone(), &p.schema)?
                    };
                    p = self.exchange(p, sink);
                }
                let keys: Vec<SortKey> = partition_by
                    .iter()
                    .map(|e| SortKey {
                        expr: e.clone(),
                        asc: true,
                        nulls_first: false,
                    })
                    .chain(order_by)
                    .collect();
                if !keys.is_empty() {
                    p.ops.push(OpSpec::Sort {
                        keys,
                        fetch: None,
                        schema: p.schema.clone(),
                    });
                }
                p.ops.push(OpSpec::Window {
                    exprs: exprs.clone(),
                    input_schema: p.schema.clone(),
                    schema: schema.clone(),
                });
                p.schema = schema.clone();
                p
            }
            LogicalPlan::Limit { input, skip, fetch } => {
                let mut p = self.lower(input)?;
                if p.partitions > 1 {
                    if let Some(f) = fetch {
                        p.ops.push(OpSpec::Limit {
                            skip: 0,
                            fetch: Some(skip + f),
                        });
                    }
                    p = self.exchange(p, Sink::Gather);
                }
                p.ops.push(OpSpec::Limit {
                    skip: *skip,
                    fetch: *fetch,
                });
                p
            }
        })
    }

    fn lower_join(
        &mut self,
        left: &'p LogicalPlan,
        right: &'p LogicalPlan,
        kind: JoinKind,
        on: &[(Expr, Expr)],
        filter: Option<&Expr>,
        schema: SchemaRef,
    ) -> Result<Pipeline> {
        // A join without keys whose condition compares the two sides with
        // an inequality is a range join; any other join without keys (a
        // cross join with a one-row subquery, say) hashes every row under
        // the same constant key.
        let constant = || Expr::Literal(datafusion_common::ScalarValue::Int64(Some(1)));
        let build_rows = estimate(right).rows;
        let probe_rows = estimate(left).rows;
        let range_join = match (on.is_empty(), kind, filter) {
            (true, JoinKind::Inner | JoinKind::Left | JoinKind::Semi | JoinKind::Anti, Some(f))
                if self.range_build_fits(build_rows, &right.schema()) =>
            {
                range_condition(f, &left.schema(), &right.schema())
            }
            _ => None,
        };
        let (probe_keys, build_keys, range, filter) = match range_join {
            Some(r) => (vec![r.probe], vec![r.build], Some(r.op), r.rest),
            None if on.is_empty() => (vec![constant()], vec![constant()], None, filter.cloned()),
            None => {
                let (p, b) = on.iter().cloned().unzip();
                (p, b, None, filter.cloned())
            }
        };
        // Right and full joins must see all probe rows of a key in one task
        // to know which build rows never matched; mark joins need the whole
        // build side to know whether it holds a NULL.
        let broadcast = match kind {
            JoinKind::Right | JoinKind::Full | JoinKind::RightSemi | JoinKind::RightAnti => false,
            JoinKind::Mark => true,
            _ => {
                on.is_empty()
                    || build_rows <= BROADCAST_ROWS
                    || self.broadcast_pays(build_rows, &right.schema(), probe_rows)
            }
        };
        let build = self.lower(right)?;
        let build_schema = build.schema.clone();
        let mut probe = self.lower(left)?;
        let left_schema = probe.schema.clone();
        let build_stage = if broadcast {
            let build_stage = self.close(build, Sink::Gather);
            if range.is_none()
                && !on.is_empty()
                && drops_unmatched_probe_rows(kind)
                && build_rows <= EARLY_KEY_FILTER_MAX_BUILD_ROWS
                && build_keys.iter().any(|k| {
                    share_of_table(right, k).is_some_and(|s| s <= EARLY_KEY_FILTER_MAX_SHARE)
                })
            {
                if let Some((at, keys)) = before_filters(&probe.ops, &probe_keys) {
                    probe.ops.insert(
                        at,
                        OpSpec::KeyFilter {
                            build_stage,
                            probe_keys: keys,
                            build_keys: build_keys.clone(),
                            build_schema: build_schema.clone(),
                            max_build_rows: EARLY_KEY_FILTER_MAX_ROWS,
                        },
                    );
                }
            }
            build_stage
        } else {
            let partitions = self.join_partitions(build_rows, &build_schema);
            let build_sink = self.sink_into(build_keys.clone(), &build_schema, partitions)?;
            let probe_sink = self.sink_into(probe_keys.clone(), &left_schema, partitions)?;
            // A small build side filters the probe rows before they cross
            // the exchange; the probe stage then waits for the build stage.
            let filter = !on.is_empty()
                && drops_unmatched_probe_rows(kind)
                && build_rows * KEY_FILTER_RATIO <= probe_rows;
            if filter {
                let build_stage = self.close(build, build_sink);
                probe.ops.push(OpSpec::KeyFilter {
                    build_stage,
                    probe_keys: probe_keys.clone(),
                    build_keys: build_keys.clone(),
                    build_schema: build_schema.clone(),
                    max_build_rows: KEY_FILTER_MAX_ROWS,
                });
                probe = self.exchange(probe, probe_sink);
                build_stage
            } else {
                probe = self.exchange(probe, probe_sink);
                self.close(build, build_sink)
            }
        };
        probe.ops.push(OpSpec::HashJoin {
            build_stage,
            broadcast,
            kind,
            probe_keys,
            build_keys,
            filter,
            left_schema,
            build_schema,
            output_schema: schema.clone(),
            range,
            count_pairs: false,
        });
        probe.schema = schema;
        Ok(probe)
    }

    /// Whether a build side of more than `BROADCAST_ROWS` rows of `schema`
    /// is still better broadcast: its table is estimated within an eighth
    /// of the memory limit and the probe side at `BROADCAST_PROBE_RATIO`
    /// times its rows or more. Then one worker building the table alone
    /// costs less than sending every probe row through an exchange, which
    /// holds them all (and past the limit spills them) before the join
    /// starts.
    fn broadcast_pays(&self, build_rows: f64, schema: &Schema, probe_rows: f64) -> bool {
        let Some(limit) = self.memory_limit else {
            return false;
        };
        join_table_bytes(build_rows, schema) <= limit / 8.0
            && probe_rows >= BROADCAST_PROBE_RATIO * build_rows
    }

    /// Whether `rows` rows of `schema` are estimated to fit half the
    /// memory limit while a range join builds on them: the rows and their
    /// concatenated copy, then the keys in order (16 bytes a row at most,
    /// strings as views) and the row order. Its build side cannot spill; the
    /// pairwise join it replaces can, but may take days on large sides.
    fn range_build_fits(&self, rows: f64, schema: &Schema) -> bool {
        let Some(limit) = self.memory_limit else {
            return true;
        };
        let bytes = rows * (2.0 * row_bytes(schema) + 16.0 + 4.0);
        bytes <= limit / 2.0
    }

    /// A hash sink on `keys` into `target_partitions` partitions.
    fn partitioned_sink(&self, keys: Vec<Expr>, schema: &Schema) -> Result<Sink> {
        self.sink_into(keys, schema, self.target_partitions)
    }

    fn sink_into(&self, keys: Vec<Expr>, schema: &Schema, partitions: usize) -> Result<Sink> {
        let key_types = keys
            .iter()
            .map(|k| k.data_type(schema))
            .collect::<Result<_>>()?;
        Ok(Sink::Hash {
            keys,
            key_types,
            partitions,
        })
    }

    /// Partitions of a partitioned join whose build side is `build_rows`
    /// rows of `schema`: enough for each to fit `partition_bytes`.
    fn join_partitions(&self, build_rows: f64, schema: &Schema) -> usize {
        let Some(budget) = self.partition_bytes else {
            return self.target_partitions;
        };
        let bytes = join_table_bytes(build_rows, schema);
        self.partitions_for(bytes, budget, MAX_JOIN_PARTITIONS)
    }

    /// Enough partitions for `bytes` in pieces of `per_partition`, at most
    /// `max`, rounded up to a multiple of the target.
    fn partitions_for(&self, bytes: f64, per_partition: f64, max: f64) -> usize {
        let target = self.target_partitions;
        let needed = (bytes / per_partition.max(1.0)).ceil().min(max) as usize;
        needed.div_ceil(target).max(1) * target
    }

    /// Partitions of a final aggregate of an estimated `groups` groups of
    /// partial state `schema`: enough for each partition's table to stay
    /// within `AGGREGATE_TABLE_BYTES`. A table far larger than the cache
    /// misses it on every row (a final aggregate of 15 million groups in
    /// two partitions: 6.3 s; in 32: 2.5 s); the tasks run a few at a
    /// time, so smaller tables also hold less memory at once.
    fn aggregate_partitions(&self, groups: f64, schema: &Schema) -> usize {
        // the state, its key words and the hash slot (16 bytes each)
        let bytes = groups * (row_bytes(schema) + 32.0);
        self.partitions_for(bytes, AGGREGATE_TABLE_BYTES, MAX_AGGREGATE_PARTITIONS)
    }

    fn lower_aggregate(
        &mut self,
        mut p: Pipeline,
        group: &[Expr],
        aggs: &[AggregateExpr],
        schema: SchemaRef,
        groups: Option<f64>,
    ) -> Result<Pipeline> {
        let in_schema = p.schema.clone();
        let arg_types: Vec<DataType> = aggs
            .iter()
            .map(|a| match &a.arg {
                Some(e) => e.data_type(&in_schema),
                None => Ok(DataType::Int64),
            })
            .collect::<Result<_>>()?;
        if counts_rows_only(group, aggs) {
            count_join_pairs(&mut p.ops);
        }
        let single = |input_schema: SchemaRef| OpSpec::Aggregate {
            mode: AggMode::Single,
            group: group.to_vec(),
            aggs: aggs.to_vec(),
            input_schema,
            output_schema: schema.clone(),
            arg_types: arg_types.clone(),
            skip_hint: Default::default(),
        };
        // One partition needs no exchange; but with no partitions at all an
        // aggregate without GROUP BY must still produce its one row, which
        // the final phase below does.
        if p.partitions == 1 || (p.partitions == 0 && !group.is_empty()) {
            p.ops.push(single(in_schema));
            p.schema = schema;
            return Ok(p);
        }
        if aggs.iter().any(|a| a.distinct) {
            // Distinct sets cannot be merged cheaply: send raw rows by group key.
            let sink = self.hash_sink(group.to_vec(), &in_schema)?;
            let mut p = self.exchange(p, sink);
            p.ops.push(single(in_schema));
            p.schema = schema;
            return Ok(p);
        }
        // Partial state: the group columns, then each aggregate's state columns.
        let mut fields: Vec<Field> = schema.fields()[..group.len()]
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        for (i, (a, t)) in aggs.iter().zip(&arg_types).enumerate() {
            fields.extend(state_fields(a, t, &format!("agg{i}")));
        }
        let state_schema = Arc::new(Schema::new(fields));
        p.ops.push(OpSpec::Aggregate {
            mode: AggMode::Partial,
            group: group.to_vec(),
            aggs: aggs.to_vec(),
            input_schema: in_schema,
            output_schema: state_schema.clone(),
            arg_types: arg_types.clone(),
            skip_hint: Default::default(),
        });
        p.schema = state_schema.clone();
        let keys: Vec<Expr> = (0..group.len()).map(Expr::Column).collect();
        let sink = if keys.is_empty() {
            Sink::Gather
        } else {
            let partitions = groups.map_or(self.target_partitions, |g| {
                self.aggregate_partitions(g, &state_schema)
            });
            self.sink_into(keys.clone(), &state_schema, partitions)?
        };
        let mut p = self.exchange(p, sink);
        p.ops.push(OpSpec::Aggregate {
            mode: AggMode::Final,
            group: keys,
            aggs: aggs.to_vec(),
            input_schema: state_schema,
            output_schema: schema.clone(),
            arg_types,
            skip_hint: Default::default(),
        });
        p.schema = schema;
        Ok(p)
    }
}

/// A guess at the bytes of one row of `schema` in Arrow arrays.
/// Estimated bytes of a hash join's table over `rows` rows of `schema`:
/// the rows, and about as much again for the hash table over them.
fn join_table_bytes(rows: f64, schema: &Schema) -> f64 {
    rows * row_bytes(schema) * 2.0
}

fn row_bytes(schema: &Schema) -> f64 {
    schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Boolean => 1.0,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => 28.0,
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView => 28.0,
            t => t.primitive_width().unwrap_or(8) as f64,
        })
        .sum::<f64>()
        .max(1.0)
}

/// Whether an aggregate needs only the number of its input rows: no GROUP
/// BY, and nothing but `count(*)`.
fn counts_rows_only(group: &[Expr], aggs: &[AggregateExpr]) -> bool {
    group.is_empty()
        && aggs
            .iter()
            .all(|a| a.func == AggFunc::CountStar && !a.distinct)
}

/// When the pipeline ends in an inner or left join without a residual
/// filter whose columns the projections after it drop, and only the number
/// of rows is wanted: the join counts its pairs instead of making them.
fn count_join_pairs(ops: &mut [OpSpec]) {
    let tail = ops
        .iter()
        .rev()
        .take_while(|op| matches!(op, OpSpec::Project { exprs, .. } if exprs.is_empty()))
        .count();
    if tail == 0 || tail == ops.len() {
        return;
    }
    let at = ops.len() - tail - 1;
    if let OpSpec::HashJoin {
        kind: JoinKind::Inner | JoinKind::Left,
        filter: None,
        count_pairs,
        ..
    } = &mut ops[at]
    {
        *count_pairs = true;
    }
}

/// A range join's condition: `probe op build` with `op` one of `< <= > >=`,
/// and what else the join condition asks.
struct RangeCondition {
    probe: Expr,
    op: BinaryOp,
    build: Expr,
    rest: Option<Expr>,
}

/// The first conjunct of `filter` (over left ++ right columns) that
/// compares an expression of the left side alone with one of the right side
/// alone by an inequality, when both have the same type and it orders.
fn range_condition(filter: &Expr, left: &Schema, right: &Schema) -> Option<RangeCondition> {
    let width = left.fields().len();
    let side = |e: &Expr| {
        let mut cols = Vec::new();
        e.columns(&mut cols);
        match (
            cols.iter().all(|&c| c < width),
            cols.iter().all(|&c| c >= width),
        ) {
            _ if cols.is_empty() => None,
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        }
    };
    let mut conjuncts = filter.clone().split_conjunction();
    // One side's expression, the other side's (as a column of `right`) and
    // the operator as seen from the left side, when `c` is such a conjunct.
    let split = |c: &Expr| -> Option<(Expr, BinaryOp, Expr)> {
        let Expr::Binary {
            op,
            left: l,
            right: r,
        } = c
        else {
            return None;
        };
        let flipped = match op {
            BinaryOp::Lt => BinaryOp::Gt,
            BinaryOp::LtEq => BinaryOp::GtEq,
            BinaryOp::Gt => BinaryOp::Lt,
            BinaryOp::GtEq => BinaryOp::LtEq,
            _ => return None,
        };
        let (probe, op, build) = match (side(l), side(r)) {
            (Some(true), Some(false)) => ((**l).clone(), *op, (**r).clone()),
            (Some(false), Some(true)) => ((**r).clone(), flipped, (**l).clone()),
            _ => return None,
        };
        let build = build.remap_columns(&|c| c - width);
        let probe_type = probe.data_type(left).ok()?;
        let orders = arrow::row::RowConverter::supports_fields(&[arrow::row::SortField::new(
            probe_type.clone(),
        )]);
        (orders && build.data_type(right).ok()? == probe_type).then_some((probe, op, build))
    };
    let (at, (probe, op, build)) = conjuncts
        .iter()
        .enumerate()
        .find_map(|(at, c)| split(c).map(|found| (at, found)))?;
    conjuncts.remove(at);
    let rest = (!conjuncts.is_empty()).then(|| Expr::and_all(conjuncts));
    Some(RangeCondition {
        probe,
        op,
        build,
        rest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optimizer::test_plans::{col, table_in_parts};

    const GB: usize = 1 << 30;

    /// SELECT k, count(*) FROM t GROUP BY k
    fn count_by_key(t: LogicalPlan) -> LogicalPlan {
        let aggs = vec![AggregateExpr {
            func: AggFunc::CountStar,
            arg: None,
            distinct: false,
            param: None,
        }];
        LogicalPlan::aggregate(t, vec![col(0)], aggs, &["k".into(), "n".into()]).unwrap()
    }

    fn final_aggregate_partitions(g: &TaskGraph) -> usize {
        let is_final = |o: &OpSpec| {
            matches!(
                o,
                OpSpec::Aggregate {
                    mode: AggMode::Final,
                    ..
                }
            )
        };
        let stage = g.stages.iter().find(|s| s.ops.iter().any(is_final));
        stage.expect("a final aggregate").partitions
    }

    #[test]
    fn a_final_aggregate_of_many_groups_gets_more_partitions() {
        // 10M keys by the statistics: 480 MB of table in 30 partitions
        let many = count_by_key(table_in_parts(&["k"], 20_000_000, 0, 9_999_999, 8));
        let graph = lower_within(&many, 2, Some(2 * GB)).unwrap();
        assert_eq!(final_aggregate_partitions(&graph), 30);
        // 100 keys: the target number
        let few = count_by_key(table_in_parts(&["k"], 20_000_000, 0, 99, 8));
        let graph = lower_within(&few, 2, Some(2 * GB)).unwrap();
        assert_eq!(final_aggregate_partitions(&graph), 2);
        // never more than the cap, a multiple of the target
        let most = count_by_key(table_in_parts(&["k"], 1 << 40, 0, 1 << 40, 8));
        let graph = lower_within(&most, 3, Some(2 * GB)).unwrap();
        assert_eq!(final_aggregate_partitions(&graph), 66);
    }

    fn join(probe: LogicalPlan, build: LogicalPlan) -> LogicalPlan {
        LogicalPlan::join(probe, build, JoinKind::Inner, vec![(col(0), col(0))], None)
    }

    fn is_broadcast(plan: &LogicalPlan, memory_limit: usize) -> bool {
        let graph = lower_within(plan, 2, Some(memory_limit)).unwrap();
        let mut joins = graph
            .stages
            .iter()
            .flat_map(|s| &s.ops)
            .filter_map(|o| match o {
                OpSpec::HashJoin { broadcast, .. } => Some(*broadcast),
                _ => None,
            });
        joins.next().expect("a join")
    }

    #[test]
    fn a_large_build_side_is_broadcast_when_it_fits_and_the_probe_side_is_far_larger() {
        let build = table_in_parts(&["k", "v"], 3_000_000, 0, 59_999_999, 4);
        let probe = table_in_parts(&["k", "w"], 60_000_000, 0, 59_999_999, 8);
        // 3M rows of 16 bytes, twice over: 96 MB, within an eighth of 2 GB
        assert!(is_broadcast(&join(probe.clone(), build.clone()), 2 * GB));
        // but not of 512 MB
        assert!(!is_broadcast(&join(probe, build.clone()), GB / 2));
        // nor with a probe side only twice as large
        let probe = table_in_parts(&["k", "w"], 6_000_000, 0, 59_999_999, 8);
        assert!(!is_broadcast(&join(probe, build), 2 * GB));
    }

    #[test]
    fn a_key_filter_goes_before_the_filters_through_column_projections() {
        use datafusion_common::ScalarValue;
        let filter = || OpSpec::Filter {
            predicate: Expr::Literal(ScalarValue::Boolean(Some(true))),
            stats: Arc::new(ConjunctStats::new(1)),
        };
        let project = |exprs: Vec<Expr>| OpSpec::Project {
            schema: Arc::new(Schema::empty()),
            exprs,
        };
        // Filter → Project(c2, c0): the key c1 after them is c0 before
        let ops = vec![filter(), project(vec![Expr::Column(2), Expr::Column(0)])];
        assert_eq!(
            before_filters(&ops, &[Expr::Column(1)]),
            Some((0, vec![Expr::Column(0)]))
        );
        // no filter to pass: nothing gained
        let ops = vec![project(vec![Expr::Column(2), Expr::Column(0)])];
        assert_eq!(before_filters(&ops, &[Expr::Column(1)]), None);
        // a key computed by the projection stops the walk there, after
        // the filter below it: nothing gained either
        let computed = Expr::binary(BinaryOp::Plus, Expr::Column(0), Expr::Column(1));
        let ops = vec![filter(), project(vec![computed])];
        assert_eq!(before_filters(&ops, &[Expr::Column(0)]), None);
        // Project(c0 + c1, c3) → Filter: the key c1 is c3 below both; the
        // computed key c0 stops the walk after the projection, and the
        // filter above it is still passed
        let ops = vec![
            project(vec![
                Expr::binary(BinaryOp::Plus, Expr::Column(0), Expr::Column(1)),
                Expr::Column(3),
            ]),
            filter(),
        ];
        assert_eq!(
            before_filters(&ops, &[Expr::Column(1)]),
            Some((0, vec![Expr::Column(3)]))
        );
        assert_eq!(
            before_filters(&ops, &[Expr::Column(0)]),
            Some((1, vec![Expr::Column(0)]))
        );
    }
}
