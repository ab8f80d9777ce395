//! One task: one partition of one stage, from source through the fused
//! operators into the sink.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;

use arrow::record_batch::RecordBatch;

use crate::error::{QuarryError, Result};
use crate::exec::join::JoinHashTable;
use crate::exec::operator::Operator;
use crate::exec::repartition::HashPartitioner;
use crate::graph::{BuildTables, Sink, Source, Stage};
use crate::plan::Expr;

/// Where task outputs wait for the stage that reads them: for each stage, one
/// list of batches per consumer partition.
pub struct PartitionStore {
    buckets: Vec<Vec<Mutex<Vec<RecordBatch>>>>,
    /// Hash tables of broadcast build sides, built once per stage.
    broadcast: Vec<Mutex<Option<Arc<JoinHashTable>>>>,
}

impl PartitionStore {
    pub fn new(stages: &[Stage]) -> Self {
        PartitionStore {
            buckets: stages
                .iter()
                .map(|s| {
                    let n = match s.sink {
                        Sink::Output => s.partitions,
                        _ => s.sink.consumer_partitions(),
                    };
                    (0..n).map(|_| Mutex::new(Vec::new())).collect()
                })
                .collect(),
            broadcast: stages.iter().map(|_| Mutex::new(None)).collect(),
        }
    }

    fn put(&self, stage: usize, partition: usize, batches: Vec<RecordBatch>) {
        if let Ok(mut b) = self.buckets[stage][partition].lock() {
            b.extend(batches);
        }
    }

    fn take(&self, stage: usize, partition: usize) -> Vec<RecordBatch> {
        self.buckets[stage][partition]
            .lock()
            .map(|mut b| std::mem::take(&mut *b))
            .unwrap_or_default()
    }

    /// Everything the output stage produced, in partition order.
    pub fn take_all(&self, stage: usize) -> Vec<RecordBatch> {
        (0..self.buckets[stage].len())
            .flat_map(|p| self.take(stage, p))
            .collect()
    }
}

impl BuildTables for PartitionStore {
    fn hash_table(
        &self,
        stage: usize,
        partition: Option<usize>,
        schema: &SchemaRef,
        keys: &[Expr],
    ) -> Result<Arc<JoinHashTable>> {
        match partition {
            Some(p) => Ok(Arc::new(JoinHashTable::build(
                schema.clone(),
                self.take(stage, p),
                keys,
            )?)),
            None => {
                // The first task builds the table; the others wait for it.
                let mut slot = self.broadcast[stage]
                    .lock()
                    .map_err(|_| QuarryError::exec("internal error: broadcast table poisoned"))?;
                if let Some(t) = slot.as_ref() {
                    return Ok(t.clone());
                }
                let t = Arc::new(JoinHashTable::build(
                    schema.clone(),
                    self.take(stage, 0),
                    keys,
                )?);
                *slot = Some(t.clone());
                Ok(t)
            }
        }
    }
}

/// Pushes `batches` through `ops[from..]`, returning what comes out.
fn push_through(
    ops: &mut [Box<dyn Operator>],
    metrics: &mut [OpMetrics],
    from: usize,
    batches: Vec<RecordBatch>,
) -> Result<Vec<RecordBatch>> {
    let mut current = batches;
    for (op, m) in ops[from..].iter_mut().zip(metrics[from..].iter_mut()) {
        let started = Instant::now();
        let mut next = Vec::new();
        for b in current {
            op.push(b, &mut next)?;
        }
        m.time += started.elapsed();
        m.rows_out += next.iter().map(|b| b.num_rows()).sum::<usize>();
        current = next;
    }
    Ok(current)
}

/// What one operator of one task did.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpMetrics {
    pub rows_out: usize,
    /// Time inside the operator (push and finish), not counting the
    /// operators it feeds.
    pub time: Duration,
}

pub struct TaskOutput {
    /// Rows the task read from its source.
    pub rows_in: usize,
    /// Per operator of the stage, in order.
    pub metrics: Vec<OpMetrics>,
}

pub fn run_task(
    stage: &Stage,
    partition: usize,
    store: &PartitionStore,
    cancel: &AtomicBool,
) -> Result<TaskOutput> {
    let mut ops = stage
        .ops
        .iter()
        .map(|o| o.instantiate(partition, store))
        .collect::<Result<Vec<_>>>()?;
    let mut sink = SinkWriter::new(stage, partition)?;
    let mut rows_in = 0;
    let mut metrics = vec![OpMetrics::default(); ops.len()];
    let mut on_batch = |batch: RecordBatch| -> Result<()> {
        if cancel.load(Ordering::Relaxed) {
            return Err(QuarryError::Cancelled);
        }
        rows_in += batch.num_rows();
        let out = push_through(&mut ops, &mut metrics, 0, vec![batch])?;
        sink.write(out)?;
        if ops.iter().any(|o| o.is_done()) {
            return Err(StopReading.into());
        }
        Ok(())
    };
    let read = match &stage.source {
        Source::Scan { partitions, .. } => partitions[partition].read(&mut on_batch),
        Source::Values(batches) => batches.iter().try_for_each(|b| on_batch(b.clone())),
        Source::Exchange { stage: from } => store
            .take(*from, partition)
            .into_iter()
            .try_for_each(&mut on_batch),
    };
    match read {
        Ok(()) => {}
        Err(e) if is_stop_reading(&e) => {}
        Err(e) => return Err(e),
    }
    for k in 0..ops.len() {
        let started = Instant::now();
        let mut out = Vec::new();
        ops[k].finish(&mut out)?;
        metrics[k].time += started.elapsed();
        metrics[k].rows_out += out.iter().map(|b| b.num_rows()).sum::<usize>();
        let out = push_through(&mut ops, &mut metrics, k + 1, out)?;
        sink.write(out)?;
    }
    sink.finish(store);
    Ok(TaskOutput { rows_in, metrics })
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

/// Collects a task's output and hands it to the partition store at the end.
struct SinkWriter<'a> {
    stage: &'a Stage,
    partition: usize,
    partitioner: Option<HashPartitioner>,
    buckets: Vec<Vec<RecordBatch>>,
}

impl<'a> SinkWriter<'a> {
    fn new(stage: &'a Stage, partition: usize) -> Result<Self> {
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
        })
    }

    fn write(&mut self, batches: Vec<RecordBatch>) -> Result<()> {
        for b in batches {
            if b.num_rows() == 0 {
                continue;
            }
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
        }
        Ok(())
    }

    fn finish(self, store: &PartitionStore) {
        let id = self.stage.id;
        match self.stage.sink {
            Sink::Output => store.put(
                id,
                self.partition,
                self.buckets.into_iter().flatten().collect(),
            ),
            _ => {
                for (p, batches) in self.buckets.into_iter().enumerate() {
                    if !batches.is_empty() {
                        store.put(id, p, batches);
                    }
                }
            }
        }
    }
}
