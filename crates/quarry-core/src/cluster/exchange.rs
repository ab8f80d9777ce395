//! The exchange of a query run on a cluster: a directory every worker sees
//! (a shared disk) or a prefix in an object store (`place.rs`). Each task
//! writes its output there as one file, then a small manifest saying which
//! byte ranges of the file belong to which consumer partition; a task reads
//! its inputs by the manifests of the stages before it, fetching only its
//! own ranges of each file.
//!
//! The file is a run of Arrow IPC streams ("segments"): the batches a task
//! hands over at once for one partition are a stream of their own (schema,
//! batches, end mark), so that a reader decodes any range it is given
//! without the rest of the file.
//!
//! ```text
//! <query>/graph.json                   the task graph (graph::wire)
//! <query>/s<stage>/t<task>-<attempt>.arrow  (IPC stream segments)
//! <query>/s<stage>/t<task>.json        the manifest of the task's accepted attempt
//! <query>/s<stage>.json                or: the manifests of all the stage's tasks
//! ```
//!
//! quarry's own driver gets each manifest in the worker's reply and writes
//! the stage's manifests as one file when its last task is done, before a
//! task that reads the stage starts: a file per stage instead of one per
//! task. Under Dask, and for `quarry worker run`, each task puts its own.
//!
//! One file per task, not one per task and partition: creating files is
//! what costs on a local file system (ext4 spends more time finding a free
//! inode than writing the rows when a stage of 1000 tasks feeds 32
//! partitions), and an object store charges per object.
//!
//! A task writes the file of its own attempt and puts its manifest in place
//! last, by a rename: an attempt that dies half way leaves a file no
//! manifest names, and a retried task replaces the manifest whole.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use super::place::{io_error, unique_name, Place};
use crate::catalog::ObjectStores;

use super::shared::SharedBuilds;
use crate::error::{QuarryError, Result};
use crate::exec::join::{build_side, JoinBuild};
use crate::exec::key_filter::KeySet;
use crate::graph::{TaskContext, TaskGraph};
use crate::plan::{BinaryOp, Expr};
use crate::runtime::memory::MemoryPool;
use crate::runtime::ready::TaskId;
use crate::runtime::spill::compact_views;
use crate::runtime::{key_set_of, Batches, OpMetrics, StageIo, TaskOutput};

/// The directory (or object store prefix) of one query's exchange.
#[derive(Debug, Clone)]
pub struct ExchangeDir {
    root: PathBuf,
    place: Place,
}

/// The part of a task's output for one consumer partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionOutput {
    pub partition: usize,
    pub rows: usize,
    /// Bytes of its batches in the file.
    pub bytes: u64,
    /// Its segments in the task's file, in order: (offset, length).
    pub segments: Vec<(u64, u64)>,
}

/// What a finished task left: its file and its figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskManifest {
    pub stage: usize,
    pub partition: usize,
    pub attempt: String,
    /// The task's output file, relative to the query's directory (none when
    /// it wrote no rows).
    pub file: Option<String>,
    /// Its partitions, in partition order.
    pub outputs: Vec<PartitionOutput>,
    /// Rows the task read from its source.
    pub rows_in: usize,
    /// Bytes its scan read from files and object stores.
    pub bytes_fetched: u64,
    /// Bytes its operators spilled to the worker's disk.
    pub spilled_bytes: u64,
    pub micros: u64,
    /// What each of the stage's operators did, in order.
    pub ops: Vec<OpFigures>,
}

/// One operator's figures in one task (`OpMetrics`, as sent).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OpFigures {
    pub rows_out: usize,
    pub micros: u64,
    pub spilled_bytes: u64,
    pub spill_files: usize,
}

impl From<&OpMetrics> for OpFigures {
    fn from(m: &OpMetrics) -> Self {
        OpFigures {
            rows_out: m.rows_out,
            micros: m.time.as_micros() as u64,
            spilled_bytes: m.spilled.bytes,
            spill_files: m.spilled.files,
        }
    }
}

impl From<&OpFigures> for OpMetrics {
    fn from(f: &OpFigures) -> Self {
        OpMetrics {
            rows_out: f.rows_out,
            time: std::time::Duration::from_micros(f.micros),
            spilled: crate::exec::operator::SpillCount {
                bytes: f.spilled_bytes,
                files: f.spill_files,
            },
        }
    }
}

impl ExchangeDir {
    /// The exchange at `root` (a path or a URL; created if missing).
    pub fn create(root: &Path, stores: &ObjectStores) -> Result<ExchangeDir> {
        let place = Place::of(root, stores)?;
        place.create()?;
        Ok(ExchangeDir {
            root: root.to_path_buf(),
            place,
        })
    }

    /// The exchange at `root`, not looked at yet (reading its graph tells
    /// whether it is there).
    pub fn at(root: &Path, stores: &ObjectStores) -> Result<ExchangeDir> {
        Ok(ExchangeDir {
            root: root.to_path_buf(),
            place: Place::of(root, stores)?,
        })
    }

    /// The exchange at `root`, which must exist (a store's, once the driver
    /// put the graph there).
    pub fn open(root: &Path, stores: &ObjectStores) -> Result<ExchangeDir> {
        let exchange = Self::at(root, stores)?;
        if !exchange.exists() {
            return Err(QuarryError::Io(format!(
                "the exchange directory '{}' does not exist (is it on a disk this worker shares?)",
                root.display()
            )));
        }
        Ok(exchange)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn is_remote(&self) -> bool {
        self.place.is_remote()
    }

    /// Whether the query's exchange is still there (its driver removes it
    /// when the query ends).
    pub fn exists(&self) -> bool {
        match &self.place {
            Place::Local(dir) => dir.is_dir(),
            Place::Remote { .. } => self.place.has(GRAPH),
        }
    }

    /// Puts the encoded task graph in the exchange.
    pub fn put_graph(&self, bytes: Vec<u8>) -> Result<()> {
        self.place.put(GRAPH, bytes)
    }

    /// The encoded task graph.
    pub fn graph(&self) -> Result<Vec<u8>> {
        self.place.get(GRAPH)?.ok_or_else(|| {
            QuarryError::Io(format!(
                "cannot read the task graph '{}': not found (is the exchange on a disk this worker shares?)",
                self.place.display(GRAPH)
            ))
        })
    }

    /// Puts the manifests of all of `stage`'s tasks in place, as one file.
    pub fn write_stage_manifests(&self, stage: usize, manifests: &[TaskManifest]) -> Result<()> {
        let text = serde_json::to_vec(manifests)
            .map_err(|e| QuarryError::exec(format!("internal error: manifests: {e}")))?;
        self.place.put(&format!("s{stage}.json"), text)
    }

    fn manifest_name(stage: usize, task: usize) -> String {
        format!("s{stage}/t{task}.json")
    }

    /// The manifest of a finished task.
    pub fn manifest(&self, stage: usize, task: usize) -> Result<TaskManifest> {
        let name = Self::manifest_name(stage, task);
        let text = self.place.get(&name)?.ok_or_else(|| {
            QuarryError::Io(format!(
                "the output of task {task} of stage {stage} is missing ('{}' not found)",
                self.place.display(&name)
            ))
        })?;
        serde_json::from_slice(&text).map_err(|e| {
            QuarryError::Io(format!(
                "bad task manifest '{}': {e}",
                self.place.display(&name)
            ))
        })
    }

    /// What the `tasks` tasks of `stage` left for consumer partition
    /// `partition` (for every partition when None), in task order and then
    /// partition order, read a batch at a time.
    pub fn read(&self, stage: usize, tasks: usize, partition: Option<usize>) -> Result<Batches> {
        self.read_from(&self.manifests(stage, tasks)?, partition)
    }

    /// The manifests of the `tasks` tasks of `stage`: the stage's file, or
    /// each task's.
    pub fn manifests(&self, stage: usize, tasks: usize) -> Result<Vec<TaskManifest>> {
        let name = format!("s{stage}.json");
        let Some(text) = self.place.get(&name)? else {
            return (0..tasks).map(|t| self.manifest(stage, t)).collect();
        };
        let shown = || self.place.display(&name);
        let manifests: Vec<TaskManifest> = serde_json::from_slice(&text)
            .map_err(|e| QuarryError::Io(format!("bad stage manifest '{}': {e}", shown())))?;
        if manifests.len() != tasks {
            return Err(QuarryError::Io(format!(
                "the stage manifest '{}' has {} tasks, the graph {tasks}",
                shown(),
                manifests.len()
            )));
        }
        Ok(manifests)
    }

    /// What the tasks of `manifests` left for consumer partition `partition`
    /// (for every partition when None), as [`ExchangeDir::read`].
    pub fn read_from(
        &self,
        manifests: &[TaskManifest],
        partition: Option<usize>,
    ) -> Result<Batches> {
        let mut files = Vec::new();
        for manifest in manifests {
            let Some(file) = &manifest.file else { continue };
            let segments: Vec<(u64, u64)> = manifest
                .outputs
                .iter()
                .filter(|o| partition.is_none_or(|p| o.partition == p))
                .flat_map(|o| o.segments.iter().copied())
                .collect();
            if !segments.is_empty() {
                files.push((file.clone(), segments));
            }
        }
        let place = self.place.clone();
        Ok(Box::new(files.into_iter().flat_map(
            move |(file, segments)| {
                let read: Batches = match place.open(&file) {
                    Ok(reader) => {
                        let shown = place.display(&file);
                        Box::new(segments.into_iter().flat_map(move |(offset, length)| {
                            let batches = reader
                                .read(offset..offset + length)
                                .and_then(|bytes| decode_segment(bytes, &shown));
                            let batches: Batches = match batches {
                                Ok(b) => Box::new(b.into_iter().map(Ok)),
                                Err(e) => Box::new(std::iter::once(Err(e))),
                            };
                            batches
                        }))
                    }
                    Err(e) => Box::new(std::iter::once(Err(e))),
                };
                read
            },
        )))
    }

    /// Removes the query's files.
    pub fn remove(&self) -> Result<()> {
        self.place.remove()
    }
}

/// Where the driver leaves the encoded task graph.
const GRAPH: &str = "graph.json";

/// The batches of one segment of a task's output file.
fn decode_segment(bytes: bytes::Bytes, shown: &str) -> Result<Vec<RecordBatch>> {
    let bad = |e: &dyn std::fmt::Display| QuarryError::Io(format!("cannot read '{shown}': {e}"));
    let reader = StreamReader::try_new(std::io::Cursor::new(bytes), None).map_err(|e| bad(&e))?;
    reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| bad(&e))
}

/// A writer that counts the bytes written through it (the size of each
/// batch in the file).
struct Counted<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The task's output file as it is written.
struct OutputWriter {
    out: Counted<BufWriter<File>>,
    /// Where it is written on this machine.
    path: PathBuf,
    /// Its name in the exchange.
    name: String,
    partitions: BTreeMap<usize, PartitionOutput>,
    /// A local copy bound for an object store, removed if the task fails.
    local_copy: bool,
}

impl Drop for OutputWriter {
    fn drop(&mut self) {
        if self.local_copy {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// What a worker gives each task it runs.
pub struct TaskEnv<'a> {
    pub pool: Arc<MemoryPool>,
    /// Where the task's operators spill.
    pub temp_dir: PathBuf,
    pub cancel: Arc<AtomicBool>,
    pub shared: &'a SharedBuilds,
}

/// The inputs and outputs of one task run by a worker: it reads the
/// stages before it from the exchange and writes its output there.
pub struct TaskFiles<'a> {
    exchange: &'a ExchangeDir,
    graph: &'a TaskGraph,
    stage: usize,
    partition: usize,
    attempt: String,
    output: Mutex<Option<OutputWriter>>,
    pool: Arc<MemoryPool>,
    temp_dir: PathBuf,
    cancel: Arc<AtomicBool>,
    /// Broadcast tables and key sets, shared with the worker's other tasks
    /// of the query.
    shared: &'a SharedBuilds,
}

impl<'a> TaskFiles<'a> {
    pub fn new(
        exchange: &'a ExchangeDir,
        graph: &'a TaskGraph,
        (stage, partition): TaskId,
        env: TaskEnv<'a>,
    ) -> Self {
        TaskFiles {
            exchange,
            graph,
            stage,
            partition,
            attempt: unique_name(),
            output: Mutex::new(None),
            pool: env.pool,
            temp_dir: env.temp_dir,
            cancel: env.cancel,
            shared: env.shared,
        }
    }

    /// The manifests of `stage`'s tasks, read once per worker and query.
    fn manifests(&self, stage: usize) -> Result<Arc<Vec<TaskManifest>>> {
        let tasks = self
            .graph
            .stages
            .get(stage)
            .map(|s| s.partitions)
            .ok_or_else(|| QuarryError::exec(format!("internal error: no stage {stage}")))?;
        self.shared.manifests(&self.exchange.root, stage, || {
            self.exchange.manifests(stage, tasks)
        })
    }

    /// The task's output file, made when it writes its first rows.
    fn create_output(&self) -> Result<OutputWriter> {
        let name = format!("s{}/t{}-{}.arrow", self.stage, self.partition, self.attempt);
        let path = self.exchange.place.write_path(&name, &self.temp_dir)?;
        let file = File::create(&path).map_err(|e| io_error("create", &path, e))?;
        Ok(OutputWriter {
            out: Counted {
                inner: BufWriter::new(file),
                bytes: 0,
            },
            local_copy: self.exchange.is_remote(),
            path,
            name,
            partitions: BTreeMap::new(),
        })
    }

    /// Closes the task's file and, when `put_manifest`, puts its manifest in
    /// place.
    pub fn finish(
        self,
        output: &TaskOutput,
        micros: u64,
        put_manifest: bool,
    ) -> Result<TaskManifest> {
        let written = self
            .output
            .into_inner()
            .map_err(|_| QuarryError::exec("internal error: task writer poisoned"))?;
        let (file, outputs) = match written {
            None => (None, Vec::new()),
            Some(mut w) => {
                w.out.flush().map_err(|e| io_error("write", &w.path, e))?;
                self.exchange.place.publish(&w.name, &w.path)?;
                let partitions = std::mem::take(&mut w.partitions);
                (Some(w.name.clone()), partitions.into_values().collect())
            }
        };
        let manifest = TaskManifest {
            stage: self.stage,
            partition: self.partition,
            attempt: self.attempt,
            file,
            outputs,
            rows_in: output.rows_in,
            bytes_fetched: output.bytes_fetched,
            spilled_bytes: output.metrics.iter().map(|m| m.spilled.bytes).sum(),
            micros,
            ops: output.metrics.iter().map(OpFigures::from).collect(),
        };
        if put_manifest {
            let text = serde_json::to_vec(&manifest)
                .map_err(|e| QuarryError::exec(format!("internal error: manifest: {e}")))?;
            let name = ExchangeDir::manifest_name(self.stage, self.partition);
            self.exchange.place.put(&name, text)?;
        }
        Ok(manifest)
    }
}

impl StageIo for TaskFiles<'_> {
    fn take(&self, stage: usize, partition: usize) -> Result<Batches> {
        let manifests = self.manifests(stage)?;
        self.exchange.read_from(&manifests, Some(partition))
    }

    fn put(&self, stage: usize, partition: usize, batches: Vec<RecordBatch>) -> Result<()> {
        let Some(first) = batches.first() else {
            return Ok(());
        };
        if stage != self.stage {
            return Err(QuarryError::exec(format!(
                "internal error: task of stage {} wrote stage {stage}'s output",
                self.stage
            )));
        }
        let mut output = self
            .output
            .lock()
            .map_err(|_| QuarryError::exec("internal error: task writer poisoned"))?;
        let w = match &mut *output {
            Some(w) => w,
            None => output.insert(self.create_output()?),
        };
        // One segment: an IPC stream of these batches.
        let start = w.out.bytes;
        let path = w.path.clone();
        let failed = |e: &dyn std::fmt::Display| {
            QuarryError::Io(format!(
                "cannot write '{}' (disk full?): {e}",
                path.display()
            ))
        };
        let mut rows = 0;
        let schema = first.schema();
        let mut stream = StreamWriter::try_new(&mut w.out, &schema).map_err(|e| failed(&e))?;
        for b in batches {
            // A piece of a split batch would write every string of the whole.
            let b = compact_views(b)?;
            rows += b.num_rows();
            stream.write(&b).map_err(|e| failed(&e))?;
        }
        stream.finish().map_err(|e| failed(&e))?;
        drop(stream);
        let length = w.out.bytes - start;
        let part = w
            .partitions
            .entry(partition)
            .or_insert_with(|| PartitionOutput {
                partition,
                rows: 0,
                bytes: 0,
                segments: Vec::new(),
            });
        part.rows += rows;
        part.bytes += length;
        part.segments.push((start, length));
        Ok(())
    }
}

impl TaskContext for TaskFiles<'_> {
    fn memory(&self) -> &Arc<MemoryPool> {
        &self.pool
    }

    fn temp_dir(&self) -> &Path {
        &self.temp_dir
    }

    fn cancel(&self) -> &Arc<AtomicBool> {
        &self.cancel
    }

    /// A broadcast table is built once per worker and query and shared by
    /// its tasks there (each worker builds its own).
    fn hash_table(
        &self,
        stage: usize,
        partition: Option<usize>,
        schema: &SchemaRef,
        keys: &[Expr],
        range: Option<BinaryOp>,
    ) -> Result<JoinBuild> {
        let build = |p: usize| {
            build_side(
                schema,
                keys,
                range,
                self.take(stage, p)?,
                &self.pool,
                &self.temp_dir,
                &self.cancel,
            )
        };
        match partition {
            Some(p) => build(p),
            None => self
                .shared
                .broadcast(&self.exchange.root, stage, || build(0)),
        }
    }

    fn key_set(
        &self,
        stage: usize,
        schema: &SchemaRef,
        keys: &[Expr],
        max_rows: usize,
    ) -> Result<Option<Arc<KeySet>>> {
        if self.graph.stages.get(stage).is_none() {
            return Ok(None);
        }
        self.shared.key_set(&self.exchange.root, stage, || {
            // Read only when the manifests tell the rows are few enough.
            let manifests = self.manifests(stage)?;
            let rows: usize = manifests
                .iter()
                .flat_map(|m| &m.outputs)
                .map(|o| o.rows)
                .sum();
            if rows > max_rows {
                return Ok(None);
            }
            let batches = self
                .exchange
                .read_from(&manifests, None)?
                .collect::<Result<Vec<_>>>()?;
            key_set_of(&batches, keys, schema, max_rows, &self.pool)
        })
    }
}
