//! One task: one partition of one stage, from source through the fused
//! operators into the sink.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;

use arrow::record_batch::RecordBatch;

use super::early_filter::EarlyFilterPlan;
use super::memory::{batch_bytes, MemoryPool, Reservation};
use super::spill::{compact_views, SpillFile};
use crate::catalog::EarlyFilter;
use crate::error::{QuarryError, Result};
use crate::exec::expr::evaluate_array;
use crate::exec::join::{build_side, BuildSide, JoinBuild};
use crate::exec::key_filter::KeySet;
use crate::exec::operator::{Operator, SpillCount};
use crate::exec::repartition::HashPartitioner;
use crate::graph::{OpSpec, Sink, Source, Stage, TaskContext};
use crate::plan::{BinaryOp, Expr};

/// A stage's output as its reader gets it: batches, read one at a time.
pub type Batches = Box<dyn Iterator<Item = Result<RecordBatch>>>;

/// Where a task reads the outputs of the stages before it and leaves its
/// own: the partition store of a local run, or the exchange files of a run
/// on a cluster (`crate::cluster`).
pub trait StageIo: TaskContext {
    /// What the tasks of `stage` left for its consumers' partition `partition`.
    fn take(&self, stage: usize, partition: usize) -> Result<Batches>;
    /// Leaves `batches` of `stage`'s output for consumer partition `partition`.
    fn put(&self, stage: usize, partition: usize, batches: Vec<RecordBatch>) -> Result<()>;
}

/// Where task outputs wait for the stage that reads them: for each stage, one
/// bucket of batches per consumer partition. Buffered batches are reserved
/// against the memory budget; when the budget refuses, they go to a spill
/// file and come back when the consumer reads them.
pub struct PartitionStore {
    buckets: Vec<Vec<Mutex<Bucket>>>,
    /// The query's cancel flag, for work inside a task that takes long
    /// between batches (a large join build).
    cancel: Arc<AtomicBool>,
    /// Build sides of broadcast joins (hash tables or spilled builds),
    /// built once per stage and held until the query ends.
    broadcast: Vec<Mutex<Option<BuildSide>>>,
    pool: Arc<MemoryPool>,
    temp_dir: PathBuf,
    spilled_bytes: AtomicU64,
    spill_files: AtomicUsize,
    /// Reservations of the broadcast hash tables built so far.
    tables_reserved: Mutex<Vec<Reservation>>,
    /// Key sets of build sides for runtime join filters, built once per
    /// stage (None inside: not built, as the output spilled or is large).
    key_sets: Vec<Mutex<Option<Option<Arc<KeySet>>>>>,
}

/// A runtime join filter's set is built only when it takes at most 1/this
/// of the memory limit.
const KEY_FILTER_MAX_SHARE_OF_LIMIT: usize = 16;

/// The partition store buffers task outputs in memory while the budget in
/// use stays below 1/STORE_SHARE_DIVISOR of the limit; past that it spills.
const STORE_SHARE_DIVISOR: usize = 2;

#[derive(Default)]
struct Bucket {
    batches: Vec<RecordBatch>,
    reserved: Option<Reservation>,
    /// Shared with the readers before the last, which read them in turn.
    spilled: Vec<Arc<SpillFile>>,
    /// Consumers still to read the bucket: all but the last get a copy
    /// (the batches' buffers are shared), the last takes it.
    readers: usize,
}

impl PartitionStore {
    pub fn new(
        stages: &[Stage],
        pool: Arc<MemoryPool>,
        temp_dir: PathBuf,
        cancel: Arc<AtomicBool>,
    ) -> Self {
        let mut readers = vec![0usize; stages.len()];
        for s in stages {
            match &s.source {
                Source::Exchange { stage } => readers[*stage] += 1,
                Source::Union { inputs } => inputs.iter().for_each(|(s, _)| readers[*s] += 1),
                Source::Scan { .. } | Source::Values(_) => {}
            }
            for op in &s.ops {
                if let OpSpec::HashJoin { build_stage, .. } = op {
                    readers[*build_stage] += 1;
                }
            }
        }
        PartitionStore {
            cancel,
            buckets: stages
                .iter()
                .map(|s| {
                    let n = match s.sink {
                        Sink::Output => s.partitions,
                        _ => s.sink.consumer_partitions(),
                    };
                    let bucket = || Bucket {
                        readers: readers[s.id].max(1),
                        ..Bucket::default()
                    };
                    (0..n).map(|_| Mutex::new(bucket())).collect()
                })
                .collect(),
            broadcast: stages.iter().map(|_| Mutex::new(None)).collect(),
            pool,
            temp_dir,
            spilled_bytes: AtomicU64::new(0),
            spill_files: AtomicUsize::new(0),
            tables_reserved: Mutex::new(Vec::new()),
            key_sets: stages.iter().map(|_| Mutex::new(None)).collect(),
        }
    }

    /// The distinct keys of everything `stage` produced, read in place (the
    /// consumers still take the batches), or None if some of it spilled,
    /// it is large, or the budget has no room for the set.
    fn build_key_set(
        &self,
        stage: usize,
        keys: &[Expr],
        schema: &SchemaRef,
        max_rows: usize,
    ) -> Result<Option<KeySet>> {
        let mut batches = Vec::new();
        for p in 0..self.buckets[stage].len() {
            let bucket = self.bucket(stage, p)?;
            // (a bucket its last reader took holds nothing: no set, rather
            // than an empty one that would drop every row)
            if !bucket.spilled.is_empty() || bucket.readers == 0 {
                return Ok(None);
            }
            batches.extend(bucket.batches.iter().cloned());
        }
        let Some((set, reservation)) = key_set_of(&batches, keys, schema, max_rows, &self.pool)?
        else {
            return Ok(None);
        };
        if let Ok(mut held) = self.tables_reserved.lock() {
            held.push(reservation);
        }
        Ok(Some(set))
    }

    fn bucket(&self, stage: usize, partition: usize) -> Result<std::sync::MutexGuard<'_, Bucket>> {
        self.buckets[stage][partition]
            .lock()
            .map_err(|_| QuarryError::exec("internal error: partition store poisoned"))
    }

    fn put_batches(&self, stage: usize, partition: usize, batches: Vec<RecordBatch>) -> Result<()> {
        if batches.is_empty() {
            return Ok(());
        }
        // Batches kept in memory must not keep alive the strings of the
        // whole batches they were cut from.
        let batches = batches
            .into_iter()
            .map(compact_views)
            .collect::<Result<Vec<_>>>()?;
        let size: usize = batches.iter().map(batch_bytes).sum();
        let mut bucket = self.bucket(stage, partition)?;
        // Once a bucket has spilled, later batches follow it to disk: the
        // reader returns buffered batches first, and order must hold (the
        // output of an ORDER BY).
        let in_order = bucket.spilled.is_empty();
        let reservation = bucket
            .reserved
            .get_or_insert_with(|| Reservation::new(&self.pool, "the partition store"));
        // The store keeps to its share of the budget, so that operators
        // can still reserve for their hash tables and sort buffers.
        let within_share = self.pool.used() + size <= self.pool.limit() / STORE_SHARE_DIVISOR;
        if in_order && within_share && reservation.try_grow(size) {
            bucket.batches.extend(batches);
            return Ok(());
        }
        let file = SpillFile::write(&self.temp_dir, &batches[0].schema(), &batches)?;
        self.spilled_bytes.fetch_add(file.bytes, Ordering::Relaxed);
        self.spill_files.fetch_add(1, Ordering::Relaxed);
        bucket.spilled.push(Arc::new(file));
        Ok(())
    }

    /// The batches of a bucket, buffered ones first, then the spilled ones
    /// read back one at a time.
    fn take_batches(
        &self,
        stage: usize,
        partition: usize,
    ) -> Result<impl Iterator<Item = Result<RecordBatch>>> {
        let (batches, spilled) = {
            let mut bucket = self.bucket(stage, partition)?;
            if bucket.readers > 1 {
                bucket.readers -= 1;
                (bucket.batches.clone(), bucket.spilled.clone())
            } else {
                // The reader now owns the buffered batches: the bucket's
                // reservation ends.
                let bucket = std::mem::take(&mut *bucket);
                (bucket.batches, bucket.spilled)
            }
        };
        let spilled = spilled
            .into_iter()
            .map(|f| {
                let batches = f.reader()?.collect::<Result<Vec<_>>>();
                // the last reader of the file deletes it
                drop(f);
                batches
            })
            .flat_map(|r| match r {
                Ok(v) => v.into_iter().map(Ok).collect::<Vec<_>>(),
                Err(e) => vec![Err(e)],
            });
        Ok(batches.into_iter().map(Ok).chain(spilled))
    }

    /// Hands on everything the output stage produced, in partition order,
    /// a batch at a time (spilled batches are read back as they are due).
    pub fn take_each(
        &self,
        stage: usize,
        on_batch: &mut dyn FnMut(RecordBatch) -> Result<()>,
    ) -> Result<()> {
        for p in 0..self.buckets[stage].len() {
            for batch in self.take_batches(stage, p)? {
                on_batch(batch?)?;
            }
        }
        Ok(())
    }

    /// Bytes and files spilled so far.
    pub fn spilled(&self) -> (u64, usize) {
        (
            self.spilled_bytes.load(Ordering::Relaxed),
            self.spill_files.load(Ordering::Relaxed),
        )
    }

    pub fn memory_pool(&self) -> &Arc<MemoryPool> {
        &self.pool
    }
}

/// The distinct `keys` of `batches` and the reservation of their memory,
/// or None when the batches hold more than `max_rows` rows or the set
/// would take much of the budget (or the budget has no room for it).
pub(crate) fn key_set_of(
    batches: &[RecordBatch],
    keys: &[Expr],
    schema: &SchemaRef,
    max_rows: usize,
    pool: &Arc<MemoryPool>,
) -> Result<Option<(KeySet, Reservation)>> {
    if batches.iter().map(|b| b.num_rows()).sum::<usize>() > max_rows {
        return Ok(None);
    }
    let key_types = keys
        .iter()
        .map(|k| k.data_type(schema))
        .collect::<Result<Vec<_>>>()?;
    let mut set = KeySet::new(&key_types)?;
    for b in batches {
        let columns = keys
            .iter()
            .map(|k| evaluate_array(k, b))
            .collect::<Result<Vec<_>>>()?;
        set.insert(&columns, b.num_rows())?;
    }
    set.seal()?;
    // A filter that would take much of a small budget is not worth the
    // spilling it causes elsewhere.
    if set.memory_size() > pool.limit() / KEY_FILTER_MAX_SHARE_OF_LIMIT {
        return Ok(None);
    }
    let mut reservation = Reservation::new(pool, "a runtime join filter");
    if !reservation.try_grow(set.memory_size()) {
        return Ok(None);
    }
    Ok(Some((set, reservation)))
}

impl StageIo for PartitionStore {
    fn take(&self, stage: usize, partition: usize) -> Result<Batches> {
        Ok(Box::new(self.take_batches(stage, partition)?))
    }

    fn put(&self, stage: usize, partition: usize, batches: Vec<RecordBatch>) -> Result<()> {
        self.put_batches(stage, partition, batches)
    }
}

impl TaskContext for PartitionStore {
    fn key_set(
        &self,
        stage: usize,
        schema: &SchemaRef,
        keys: &[Expr],
        max_rows: usize,
    ) -> Result<Option<Arc<KeySet>>> {
        let mut slot = self.key_sets[stage]
            .lock()
            .map_err(|_| QuarryError::exec("internal error: key set poisoned"))?;
        if let Some(set) = slot.as_ref() {
            return Ok(set.clone());
        }
        let set = self
            .build_key_set(stage, keys, schema, max_rows)?
            .map(Arc::new);
        *slot = Some(set.clone());
        Ok(set)
    }

    fn memory(&self) -> &Arc<MemoryPool> {
        &self.pool
    }

    fn temp_dir(&self) -> &std::path::Path {
        &self.temp_dir
    }

    fn cancel(&self) -> &Arc<AtomicBool> {
        &self.cancel
    }

    fn hash_table(
        &self,
        stage: usize,
        partition: Option<usize>,
        schema: &SchemaRef,
        keys: &[Expr],
        range: Option<BinaryOp>,
    ) -> Result<JoinBuild> {
        match partition {
            // The task's own partition: the operator owns the table's memory.
            Some(p) => build_side(
                schema,
                keys,
                range,
                self.take_batches(stage, p)?,
                &self.pool,
                &self.temp_dir,
                &self.cancel,
            ),
            None => {
                // The first task builds the build side; the others wait for it.
                let mut slot = self.broadcast[stage]
                    .lock()
                    .map_err(|_| QuarryError::exec("internal error: broadcast table poisoned"))?;
                if let Some(side) = slot.as_ref() {
                    return Ok(JoinBuild {
                        side: side.clone(),
                        reservation: None,
                    });
                }
                let mut build = build_side(
                    schema,
                    keys,
                    range,
                    self.take_batches(stage, 0)?,
                    &self.pool,
                    &self.temp_dir,
                    &self.cancel,
                )?;
                // Shared by all tasks: its memory is held until the query ends.
                if let Some(r) = build.reservation.take() {
                    if let Ok(mut held) = self.tables_reserved.lock() {
                        held.push(r);
                    }
                }
                *slot = Some(build.side.clone());
                Ok(build)
            }
        }
    }
}

/// Pushes `batch` through `ops`, depth first: each batch an operator emits
/// goes on down before the operator makes the next, and what reaches the
/// end goes to `emit`. An operator with pending output is resumed until it
/// has none, with a look at `cancel` before each part.
fn push_through(
    ops: &mut [Box<dyn Operator>],
    metrics: &mut [OpMetrics],
    batch: RecordBatch,
    cancel: &AtomicBool,
    emit: &mut dyn FnMut(RecordBatch) -> Result<()>,
) -> Result<()> {
    let (Some((op, rest)), Some((m, rest_metrics))) =
        (ops.split_first_mut(), metrics.split_first_mut())
    else {
        return emit(batch);
    };
    let started = Instant::now();
    let mut out = Vec::new();
    op.push(batch, &mut out)?;
    m.time += started.elapsed();
    loop {
        m.rows_out += out.iter().map(|b| b.num_rows()).sum::<usize>();
        for b in out.drain(..) {
            push_through(rest, rest_metrics, b, cancel, emit)?;
        }
        // (once a LIMIT below is satisfied, the rest would be thrown away)
        if !op.has_pending() || rest.iter().any(|o| o.is_done()) {
            return Ok(());
        }
        if cancel.load(Ordering::Relaxed) {
            return Err(QuarryError::Cancelled);
        }
        let started = Instant::now();
        op.resume(&mut out)?;
        m.time += started.elapsed();
    }
}

/// What one operator of one task did.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpMetrics {
    pub rows_out: usize,
    /// Time inside the operator (push and finish), not counting the
    /// operators it feeds.
    pub time: Duration,
    pub spilled: SpillCount,
}

pub struct TaskOutput {
    /// Rows the task read from its source.
    pub rows_in: usize,
    /// Bytes its scan read from files and object stores.
    pub bytes_fetched: u64,
    /// Per operator of the stage, in order.
    pub metrics: Vec<OpMetrics>,
}

pub fn run_task(
    stage: &Stage,
    partition: usize,
    store: &dyn StageIo,
    cancel: &AtomicBool,
) -> Result<TaskOutput> {
    let early_plan = match &stage.source {
        Source::Scan { early, .. } if early.pays() => EarlyFilterPlan::for_stage(stage),
        _ => None,
    };
    // Before the stage's operators: a join's key test reads the build side
    // that the join's hash table then takes.
    let mut early_ops = match &early_plan {
        Some(plan) => plan.instantiate(partition, store)?,
        None => vec![],
    };
    let mut ops = stage
        .ops
        .iter()
        .map(|o| o.instantiate(partition, store))
        .collect::<Result<Vec<_>>>()?;
    let mut sink = SinkWriter::new(stage, partition, store.memory())?;
    let mut rows_in = 0;
    let fetched = AtomicU64::new(0);
    let mut metrics = vec![OpMetrics::default(); ops.len()];
    let read = match &stage.source {
        Source::Scan {
            partitions, early, ..
        } => {
            let part = &partitions[partition];
            // Counted even past the limit (a scan cannot spill), but at most
            // a quarter of it: past that, counting would only make the
            // operators that can spill fail.
            let pool = store.memory();
            let mut buffers = Reservation::new(pool, "a scan's read buffers");
            buffers.force_grow(part.read_buffer_bytes().min(pool.limit() / 4));
            match early_plan {
                Some(plan) => {
                    // The scan runs the leading filters; the pipeline goes
                    // on from the operator after them.
                    let (early_metrics, rest_metrics) = metrics.split_at_mut(plan.replaces);
                    let rest_ops = &mut ops[plan.replaces..];
                    let mut filter_rows_in = 0;
                    let steps = plan.step_columns();
                    let last_step = steps.len().saturating_sub(1);
                    let mut apply = |k: usize, batch: RecordBatch| {
                        let rows = batch.num_rows();
                        if k == 0 {
                            filter_rows_in += rows;
                            early.add(rows, 0);
                        }
                        let ops = early_ops.get_mut(k).map_or(&mut [][..], |o| &mut o[..]);
                        let passed = plan.apply(k, ops, early_metrics, batch)?;
                        if k == last_step {
                            early.add(0, passed.1.len());
                        }
                        Ok(passed)
                    };
                    let mut filter = EarlyFilter {
                        steps,
                        apply: &mut apply,
                    };
                    let mut on_batch = |batch: RecordBatch| {
                        feed(rest_ops, rest_metrics, batch, cancel, &mut sink, store)
                    };
                    let read = part.read_filtered(&mut filter, &mut on_batch, &fetched);
                    rows_in += filter_rows_in;
                    match read {
                        Ok(true) => Ok(()),
                        Ok(false) => part.read(
                            &mut |batch| {
                                rows_in += batch.num_rows();
                                feed(&mut ops, &mut metrics, batch, cancel, &mut sink, store)
                            },
                            &fetched,
                        ),
                        Err(e) => Err(e),
                    }
                }
                None => part.read(
                    &mut |batch| {
                        rows_in += batch.num_rows();
                        feed(&mut ops, &mut metrics, batch, cancel, &mut sink, store)
                    },
                    &fetched,
                ),
            }
        }
        Source::Values(batches) => batches.iter().try_for_each(|b| {
            rows_in += b.num_rows();
            feed(&mut ops, &mut metrics, b.clone(), cancel, &mut sink, store)
        }),
        Source::Exchange { stage: from } => store.take(*from, partition).and_then(|batches| {
            batches.into_iter().try_for_each(|b| {
                let b = b?;
                rows_in += b.num_rows();
                feed(&mut ops, &mut metrics, b, cancel, &mut sink, store)
            })
        }),
        Source::Union { inputs } => match Source::union_part(inputs, partition) {
            Some((from, part)) => store.take(from, part).and_then(|batches| {
                batches.into_iter().try_for_each(|b| {
                    let b = b?;
                    rows_in += b.num_rows();
                    feed(&mut ops, &mut metrics, b, cancel, &mut sink, store)
                })
            }),
            None => Err(QuarryError::exec(format!(
                "internal error: a union has no partition {partition}"
            ))),
        },
    };
    match read {
        Ok(()) => {}
        Err(e) if is_stop_reading(&e) => {}
        Err(e) => return Err(e),
    }
    for k in 0..ops.len() {
        let (head, rest) = ops.split_at_mut(k + 1);
        let (m, rest_metrics) = metrics[k..].split_at_mut(1);
        let started = Instant::now();
        let mut downstream = Duration::ZERO;
        let mut rows_out = 0;
        head[k].finish_into(&mut |batch| {
            if cancel.load(Ordering::Relaxed) {
                return Err(QuarryError::Cancelled);
            }
            rows_out += batch.num_rows();
            let t = Instant::now();
            push_through(rest, rest_metrics, batch, cancel, &mut |b| {
                sink.write(b, store)
            })?;
            downstream += t.elapsed();
            Ok(())
        })?;
        m[0].time += started.elapsed().saturating_sub(downstream);
        m[0].rows_out += rows_out;
        m[0].spilled = head[k].spilled();
    }
    sink.finish(store)?;
    Ok(TaskOutput {
        rows_in,
        bytes_fetched: fetched.into_inner(),
        metrics,
    })
}

/// Pushes a batch of the task's source through its operators into the sink.
fn feed(
    ops: &mut [Box<dyn Operator>],
    metrics: &mut [OpMetrics],
    batch: RecordBatch,
    cancel: &AtomicBool,
    sink: &mut SinkWriter,
    store: &dyn StageIo,
) -> Result<()> {
    if cancel.load(Ordering::Relaxed) {
        return Err(QuarryError::Cancelled);
    }
    push_through(ops, metrics, batch, cancel, &mut |b| sink.write(b, store))?;
    if ops.iter().any(|o| o.is_done()) {
        return Err(StopReading.into());
    }
    Ok(())
}

/// Sentinel error that ends a source early once a LIMIT is satisfied.
struct StopReading;

const STOP_READING: &str = "\u{0}stop reading";

impl From<StopReading> for QuarryError {
    fn from(_: StopReading) -> Self {
        QuarryError::Execution(STOP_READING.to_string())
    }
}

fn is_stop_reading(e: &QuarryError) -> bool {
    matches!(e, QuarryError::Execution(m) if m == STOP_READING)
}

/// Collects a task's output and hands it to the partition store, whenever
/// it has buffered more than `SINK_FLUSH_BYTES`, when the budget refuses
/// what it buffers, and at the end.
struct SinkWriter<'a> {
    stage: &'a Stage,
    partition: usize,
    partitioner: Option<HashPartitioner>,
    buckets: Vec<Vec<RecordBatch>>,
    buffered: usize,
    /// What is buffered, counted against the budget.
    reservation: Reservation,
    /// Buffered bytes past which the buffer goes to the store.
    flush_bytes: usize,
}

/// What a task's sink buffers before handing it to the partition store
/// (where it is counted against the budget and may spill).
const SINK_FLUSH_BYTES: usize = 16 << 20;

impl<'a> SinkWriter<'a> {
    fn new(stage: &'a Stage, partition: usize, pool: &Arc<MemoryPool>) -> Result<Self> {
        let (partitioner, n) = match &stage.sink {
            Sink::Hash {
                keys,
                key_types,
                partitions,
            } => (
                Some(HashPartitioner::new(
                    keys.clone(),
                    key_types.clone(),
                    *partitions,
                )?),
                *partitions,
            ),
            _ => (None, 1),
        };
        Ok(SinkWriter {
            stage,
            partition,
            partitioner,
            buckets: vec![Vec::new(); n],
            buffered: 0,
            reservation: Reservation::new(pool, "a task's output buffer"),
            // a small budget is left to the operators
            flush_bytes: SINK_FLUSH_BYTES.min(pool.limit() / 16),
        })
    }

    fn write(&mut self, b: RecordBatch, store: &dyn StageIo) -> Result<()> {
        if b.num_rows() == 0 {
            return Ok(());
        }
        let size = batch_bytes(&b);
        self.buffered += size;
        let counted = self.reservation.try_grow(size);
        match &self.partitioner {
            Some(p) => {
                for (i, part) in p.split(&b)?.into_iter().enumerate() {
                    if let Some(part) = part {
                        self.buckets[i].push(part);
                    }
                }
            }
            None => self.buckets[0].push(b),
        }
        if !counted || self.buffered > self.flush_bytes {
            self.flush(store)?;
        }
        Ok(())
    }

    fn flush(&mut self, store: &dyn StageIo) -> Result<()> {
        let id = self.stage.id;
        self.buffered = 0;
        // The store reserves (or spills) what it is handed.
        self.reservation.free();
        match self.stage.sink {
            Sink::Output | Sink::Forward { .. } => store.put(
                id,
                self.partition,
                self.buckets.iter_mut().flat_map(std::mem::take).collect(),
            ),
            _ => {
                for (p, batches) in self.buckets.iter_mut().enumerate() {
                    store.put(id, p, std::mem::take(batches))?;
                }
                Ok(())
            }
        }
    }

    fn finish(mut self, store: &dyn StageIo) -> Result<()> {
        self.flush(store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};

    fn batch(start: i64, n: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        RecordBatch::try_new(
            schema,
            vec![Arc::new(Int64Array::from_iter_values(start..start + n))],
        )
        .unwrap()
    }

    fn one_stage() -> Vec<Stage> {
        vec![Stage {
            id: 0,
            source: Source::Values(vec![]),
            ops: vec![],
            sink: Sink::Gather,
            partitions: 1,
            schema: batch(0, 1).schema(),
        }]
    }

    fn files_in(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
    }

    #[test]
    fn partitions_over_the_budget_spill_and_come_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        // room for about one batch of 10k longs
        let never = Arc::new(AtomicBool::new(false));
        let store = PartitionStore::new(
            &one_stage(),
            MemoryPool::new(100_000),
            dir.path().to_path_buf(),
            never.clone(),
        );
        for i in 0..5 {
            store
                .put_batches(0, 0, vec![batch(i * 10_000, 10_000)])
                .unwrap();
        }
        let (bytes, files) = store.spilled();
        assert!(
            files >= 3 && bytes > 0,
            "spilled {files} files, {bytes} bytes"
        );
        assert_eq!(files_in(dir.path()), files);
        assert_eq!(
            sorted_values(store.take_batches(0, 0).unwrap()),
            (0..50_000).collect::<Vec<_>>()
        );
        // read back: the files are gone
        assert_eq!(files_in(dir.path()), 0);
    }

    /// The values of column 0, sorted.
    fn sorted_values(batches: impl Iterator<Item = Result<RecordBatch>>) -> Vec<i64> {
        let mut v: Vec<i64> = batches
            .map(|b| b.unwrap())
            .flat_map(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap()
                    .values()
                    .to_vec()
            })
            .collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn an_output_read_by_two_stages_reaches_both_and_its_files_go_after_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let never = Arc::new(AtomicBool::new(false));
        let mut stages = one_stage();
        stages[0].sink = Sink::Forward { partitions: 1 };
        for id in [1, 2] {
            stages.push(Stage {
                id,
                source: Source::Exchange { stage: 0 },
                ..one_stage().remove(0)
            });
        }
        let store = PartitionStore::new(
            &stages,
            MemoryPool::new(100_000),
            dir.path().to_path_buf(),
            never.clone(),
        );
        for i in 0..5 {
            store
                .put_batches(0, 0, vec![batch(i * 10_000, 10_000)])
                .unwrap();
        }
        let (_, files) = store.spilled();
        assert!(files >= 3, "spilled {files} files");
        let all: Vec<i64> = (0..50_000).collect();
        assert_eq!(sorted_values(store.take_batches(0, 0).unwrap()), all);
        assert_eq!(files_in(dir.path()), files, "kept for the second reader");
        assert_eq!(sorted_values(store.take_batches(0, 0).unwrap()), all);
        assert_eq!(files_in(dir.path()), 0);
    }

    #[test]
    fn spill_files_are_removed_when_the_query_is_dropped_unread() {
        let dir = tempfile::tempdir().unwrap();
        let never = Arc::new(AtomicBool::new(false));
        let store = PartitionStore::new(
            &one_stage(),
            MemoryPool::new(1),
            dir.path().to_path_buf(),
            never.clone(),
        );
        store.put_batches(0, 0, vec![batch(0, 1000)]).unwrap();
        assert_eq!(files_in(dir.path()), 1);
        drop(store);
        assert_eq!(files_in(dir.path()), 0);
    }

    #[test]
    fn a_missing_temp_directory_is_a_clear_error() {
        let never = Arc::new(AtomicBool::new(false));
        let store = PartitionStore::new(
            &one_stage(),
            MemoryPool::new(1),
            "/no/such/dir".into(),
            never.clone(),
        );
        let err = store
            .put_batches(0, 0, vec![batch(0, 10)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("/no/such/dir"), "{err}");
    }
}
