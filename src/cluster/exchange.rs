//! The exchange of a query run on a cluster: a directory every worker sees
//! (a shared disk). Each task writes its output there as one Arrow IPC
//! file, then a small manifest saying which of the file's batches belong to
//! which consumer partition; a task reads its inputs by the manifests of
//! the stages before it, picking its own batches out of each file.
//!
//! ```text
//! <query>/graph.json                   the task graph (graph::wire)
//! <query>/s<stage>/t<task>-<attempt>.arrow
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
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::FileReader;
use arrow::ipc::writer::FileWriter;
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

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

/// The directory of one query's exchange.
#[derive(Debug, Clone)]
pub struct ExchangeDir {
    root: PathBuf,
}

/// The part of a task's output for one consumer partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionOutput {
    pub partition: usize,
    pub rows: usize,
    /// Bytes of its batches in the file.
    pub bytes: u64,
    /// The indexes of its batches in the task's file, in order.
    pub batches: Vec<usize>,
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
    /// The exchange at `root` (created if missing).
    pub fn create(root: &Path) -> Result<ExchangeDir> {
        std::fs::create_dir_all(root).map_err(|e| io_error("create", root, e))?;
        Ok(ExchangeDir {
            root: root.to_path_buf(),
        })
    }

    /// The exchange at `root`, which must exist.
    pub fn open(root: &Path) -> Result<ExchangeDir> {
        if !root.is_dir() {
            return Err(QuarryError::Io(format!(
                "the exchange directory '{}' does not exist (is it on a disk this worker shares?)",
                root.display()
            )));
        }
        Ok(ExchangeDir {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the driver leaves the encoded task graph.
    pub fn graph_path(&self) -> PathBuf {
        self.root.join("graph.json")
    }

    fn stage_manifest_path(&self, stage: usize) -> PathBuf {
        self.root.join(format!("s{stage}.json"))
    }

    /// Puts the manifests of all of `stage`'s tasks in place, as one file.
    pub fn write_stage_manifests(&self, stage: usize, manifests: &[TaskManifest]) -> Result<()> {
        let text = serde_json::to_vec(manifests)
            .map_err(|e| QuarryError::exec(format!("internal error: manifests: {e}")))?;
        put_in_place(&self.stage_manifest_path(stage), &text, "driver")
    }

    fn manifest_path(&self, stage: usize, task: usize) -> PathBuf {
        self.root
            .join(format!("s{stage}"))
            .join(format!("t{task}.json"))
    }

    /// The manifest of a finished task.
    pub fn manifest(&self, stage: usize, task: usize) -> Result<TaskManifest> {
        let path = self.manifest_path(stage, task);
        let text = std::fs::read(&path).map_err(|e| {
            QuarryError::Io(format!(
                "the output of task {task} of stage {stage} is missing ('{}': {e})",
                path.display()
            ))
        })?;
        serde_json::from_slice(&text)
            .map_err(|e| QuarryError::Io(format!("bad task manifest '{}': {e}", path.display())))
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
        let path = self.stage_manifest_path(stage);
        match std::fs::read(&path) {
            Ok(text) => {
                let manifests: Vec<TaskManifest> = serde_json::from_slice(&text).map_err(|e| {
                    QuarryError::Io(format!("bad stage manifest '{}': {e}", path.display()))
                })?;
                if manifests.len() != tasks {
                    return Err(QuarryError::Io(format!(
                        "the stage manifest '{}' has {} tasks, the graph {tasks}",
                        path.display(),
                        manifests.len()
                    )));
                }
                Ok(manifests)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                (0..tasks).map(|t| self.manifest(stage, t)).collect()
            }
            Err(e) => Err(io_error("read", &path, e)),
        }
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
            let batches: Vec<usize> = manifest
                .outputs
                .iter()
                .filter(|o| partition.is_none_or(|p| o.partition == p))
                .flat_map(|o| o.batches.iter().copied())
                .collect();
            if !batches.is_empty() {
                files.push((self.root.join(file), batches));
            }
        }
        Ok(Box::new(files.into_iter().flat_map(|(path, batches)| {
            let read: Batches = match open_ipc(&path) {
                Ok(mut reader) => Box::new(batches.into_iter().map(move |i| {
                    reader
                        .set_index(i)
                        .and_then(|()| reader.next().transpose())
                        .map_err(|e| {
                            QuarryError::Io(format!("cannot read '{}': {e}", path.display()))
                        })?
                        .ok_or_else(|| {
                            QuarryError::Io(format!("'{}' has no batch {i}", path.display()))
                        })
                })),
                Err(e) => Box::new(std::iter::once(Err(e))),
            };
            read
        })))
    }

    /// Removes the query's files.
    pub fn remove(&self) -> Result<()> {
        match std::fs::remove_dir_all(&self.root) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("remove", &self.root, e)),
        }
    }
}

fn open_ipc(path: &Path) -> Result<FileReader<BufReader<File>>> {
    let file = File::open(path).map_err(|e| io_error("open", path, e))?;
    FileReader::try_new(BufReader::new(file), None)
        .map_err(|e| QuarryError::Io(format!("cannot read '{}': {e}", path.display())))
}

/// Writes `text` to `path` whole: to a file of its own first (`attempt`
/// names it), renamed into place.
fn put_in_place(path: &Path, text: &[u8], attempt: &str) -> Result<()> {
    // (a task without output made no file, maybe no stage directory)
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io_error("create", dir, e))?;
    }
    let tmp = path.with_extension(format!("json.{attempt}"));
    std::fs::write(&tmp, text).map_err(|e| io_error("write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io_error("write", path, e))
}

fn io_error(what: &str, path: &Path, e: impl std::fmt::Display) -> QuarryError {
    QuarryError::Io(format!("cannot {what} '{}': {e}", path.display()))
}

/// A name no other attempt of any task takes: the process, the time and a
/// counter.
fn attempt_name() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}-{nanos:x}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
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
    writer: FileWriter<Counted<BufWriter<File>>>,
    /// Relative to the query's directory.
    file: String,
    /// Batches written so far.
    batches: usize,
    partitions: BTreeMap<usize, PartitionOutput>,
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
            attempt: attempt_name(),
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
    fn create_output(&self, schema: &SchemaRef) -> Result<OutputWriter> {
        let dir = self.exchange.root.join(format!("s{}", self.stage));
        std::fs::create_dir_all(&dir).map_err(|e| io_error("create", &dir, e))?;
        let name = format!("t{}-{}.arrow", self.partition, self.attempt);
        let path = dir.join(&name);
        let file = File::create(&path).map_err(|e| io_error("create", &path, e))?;
        let counted = Counted {
            inner: BufWriter::new(file),
            bytes: 0,
        };
        let writer =
            FileWriter::try_new(counted, schema).map_err(|e| io_error("write", &path, e))?;
        Ok(OutputWriter {
            writer,
            file: format!("s{}/{name}", self.stage),
            batches: 0,
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
                w.writer
                    .finish()
                    .map_err(|e| QuarryError::Io(format!("cannot write '{}': {e}", w.file)))?;
                (Some(w.file), w.partitions.into_values().collect())
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
            let path = self.exchange.manifest_path(self.stage, self.partition);
            let text = serde_json::to_vec(&manifest)
                .map_err(|e| QuarryError::exec(format!("internal error: manifest: {e}")))?;
            put_in_place(&path, &text, &manifest.attempt)?;
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
            None => output.insert(self.create_output(&first.schema())?),
        };
        for b in batches {
            // A piece of a split batch would write every string of the whole.
            let b = compact_views(b)?;
            let before = w.writer.get_ref().bytes;
            w.writer.write(&b).map_err(|e| {
                QuarryError::Io(format!("cannot write '{}' (disk full?): {e}", w.file))
            })?;
            let part = w
                .partitions
                .entry(partition)
                .or_insert_with(|| PartitionOutput {
                    partition,
                    rows: 0,
                    bytes: 0,
                    batches: Vec::new(),
                });
            part.rows += b.num_rows();
            part.bytes += w.writer.get_ref().bytes - before;
            part.batches.push(w.batches);
            w.batches += 1;
        }
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
