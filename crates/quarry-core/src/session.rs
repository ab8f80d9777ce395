//! The one entry point of the engine: the CLI, the tests and the benchmark all
//! call `Session::sql`. A session owns the catalog and the settings.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use arrow::array::{ArrayRef, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use sqlparser::ast::{self, ObjectType, Statement};

use crate::catalog::{
    closest, open_table, Catalog, CatalogEntry, MemTable, ObjectStores, RemoteOptions,
};
use crate::cluster::{Cluster, ClusterSpec};
use crate::error::{QuarryError, Result};
use crate::graph::{lower_within, Sink, TaskGraph};
use crate::plan::types::sql_type_name;
use crate::plan::LogicalPlan;
use crate::runtime::memory::{format_bytes, MemoryPool};
use crate::runtime::{run_graph, run_graph_each, ProgressFn, RunOptions, RunStats};
use crate::sql::{parse, QuarryStatement};

mod dml;
mod recursive;

/// The stack a statement is planned on (reserved, touched only as used).
const PLANNING_STACK_BYTES: usize = 256 << 20;

/// Settings of a session, changed with `SET name = value` or CLI flags.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Worker threads of the scheduler (default: all cores).
    pub threads: usize,
    /// Partitions of hash exchanges (default: the thread count).
    pub target_partitions: usize,
    /// The memory budget of a query, in bytes (default: 75% of the RAM).
    pub memory_limit: usize,
    /// Where spill files go (default: the system's temp directory).
    pub temp_directory: std::path::PathBuf,
    /// The share of `memory_limit` in use above which the scheduler starts
    /// no new task while others run (Dask's "pause"; default 0.8).
    pub memory_pause: f64,
    /// Where queries run: None on this process's threads, else on the
    /// workers of a cluster (`SET cluster = 'local:2'`).
    pub cluster: Option<ClusterSpec>,
    /// The directory a cluster's workers share, where tasks leave their
    /// output (default: `temp_directory`, which local workers share).
    pub exchange_directory: Option<std::path::PathBuf>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        // 75% of the machine's memory, as DuckDB does by default.
        let memory_limit = crate::runtime::memory::system_memory()
            .map(|m| m / 4 * 3)
            .unwrap_or(8 << 30);
        SessionConfig {
            threads,
            target_partitions: threads,
            memory_limit,
            temp_directory: std::env::temp_dir(),
            memory_pause: 0.8,
            cluster: None,
            exchange_directory: None,
        }
    }
}

impl SessionConfig {
    /// The settings with `threads` worker threads (at least one) and as
    /// many hash partitions.
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self.target_partitions = self.threads;
        self
    }

    const NAMES: &'static [&'static str] = &[
        "threads",
        "target_partitions",
        "memory_limit",
        "temp_directory",
        "memory_pause",
        "cluster",
        "exchange_directory",
    ];

    /// Sets the memory budget from text like `2GB` or `512MiB`.
    pub fn set_memory_limit(&mut self, value: &str) -> Result<()> {
        self.memory_limit = crate::runtime::memory::parse_bytes(value).ok_or_else(|| {
            QuarryError::Config(format!(
                "invalid value '{value}' for setting 'memory_limit': expected a size such as 2GB or 512MiB"
            ))
        })?;
        Ok(())
    }

    /// Sets the spill directory; it must exist.
    pub fn set_temp_directory(&mut self, value: &str) -> Result<()> {
        let path = std::path::PathBuf::from(value.trim().trim_matches('\''));
        if !path.is_dir() {
            return Err(QuarryError::Config(format!(
                "temp_directory '{}' is not an existing directory",
                path.display()
            )));
        }
        self.temp_directory = path;
        Ok(())
    }

    /// Applies `SET name = value`.
    pub fn set(&mut self, name: &str, value: &str) -> Result<()> {
        let positive = |v: &str| -> Result<usize> {
            match v.trim().trim_matches('\'').parse::<usize>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(QuarryError::Config(format!(
                    "invalid value '{v}' for setting '{name}': expected a positive integer"
                ))),
            }
        };
        match name.to_lowercase().as_str() {
            "threads" => *self = self.clone().with_threads(positive(value)?),
            "target_partitions" => self.target_partitions = positive(value)?,
            "memory_limit" => self.set_memory_limit(value)?,
            "temp_directory" => self.set_temp_directory(value)?,
            "memory_pause" => {
                self.memory_pause = match value.trim().trim_matches('\'').parse::<f64>() {
                    Ok(f) if f > 0.0 && f <= 1.0 => f,
                    _ => {
                        return Err(QuarryError::Config(format!(
                            "invalid value '{value}' for setting 'memory_pause': expected a fraction of memory_limit in (0, 1], such as 0.8"
                        )))
                    }
                }
            }
            "cluster" => {
                let v = value.trim().trim_matches('\'');
                self.cluster = match v.to_lowercase().as_str() {
                    "" | "none" => None,
                    _ => Some(ClusterSpec::parse(v)?),
                }
            }
            "exchange_directory" => {
                let text = value.trim().trim_matches('\'');
                let path = std::path::PathBuf::from(text.trim_end_matches('/'));
                // (a store is reached when a query first writes there)
                match crate::catalog::remote::remote_url(text).transpose()? {
                    Some(url) if url.host_str().is_none_or(str::is_empty) => {
                        return Err(QuarryError::Config(format!(
                            "exchange_directory '{text}' names no bucket or host"
                        )));
                    }
                    Some(_) => {}
                    None if !path.is_dir() => {
                        return Err(QuarryError::Config(format!(
                            "exchange_directory '{}' is not an existing directory",
                            path.display()
                        )));
                    }
                    None => {}
                }
                self.exchange_directory = Some(path);
            }
            other => {
                let hint = closest(other, Self::NAMES.iter().copied().chain(RemoteOptions::names()))
                    .map(|c| format!(", did you mean '{c}'?"))
                    .unwrap_or_default();
                return Err(QuarryError::Config(format!(
                    "unknown setting '{other}'{hint}"
                )));
            }
        }
        Ok(())
    }

    pub fn get(&self, name: &str) -> Result<String> {
        match name.to_lowercase().as_str() {
            "threads" => Ok(self.threads.to_string()),
            "target_partitions" => Ok(self.target_partitions.to_string()),
            "memory_limit" => Ok(crate::runtime::memory::format_bytes(self.memory_limit)),
            "temp_directory" => Ok(self.temp_directory.display().to_string()),
            "memory_pause" => Ok(self.memory_pause.to_string()),
            "cluster" => Ok(self
                .cluster
                .as_ref()
                .map_or("none".to_string(), |c| c.to_string())),
            "exchange_directory" => Ok(self
                .exchange_directory
                .as_ref()
                .unwrap_or(&self.temp_directory)
                .display()
                .to_string()),
            other => Err(QuarryError::Config(format!("unknown setting '{other}'"))),
        }
    }
}

/// The answer of one statement: a schema and Arrow batches. Statements that
/// return no rows (CREATE, DROP, SET) have an empty schema.
#[derive(Debug, Clone)]
pub struct QueryResult {
    /// The columns' names and types (empty for DDL and SET).
    pub schema: SchemaRef,
    /// The rows, in the order of the query's ORDER BY if it has one.
    pub batches: Vec<RecordBatch>,
}

impl QueryResult {
    /// No columns and no rows: the result of a statement that returns none.
    pub fn empty() -> Self {
        QueryResult {
            schema: Arc::new(Schema::empty()),
            batches: vec![],
        }
    }

    /// The number of rows over all batches.
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }

    /// The result with its TIMESTAMP and INTERVAL columns as DuckDB's text,
    /// for output.
    pub fn displayable(&self) -> Result<Self> {
        let batches = self
            .batches
            .iter()
            .map(crate::exec::timestamp::displayable)
            .collect::<Result<Vec<_>>>()?;
        let empty = RecordBatch::new_empty(self.schema.clone());
        let schema = crate::exec::timestamp::displayable(&empty)?.schema();
        Ok(QueryResult { schema, batches })
    }

    /// True for statements that produce no table (DDL, SET).
    pub fn is_empty_statement(&self) -> bool {
        self.schema.fields().is_empty()
    }

    /// A result of string columns.
    fn strings(names: &[&str], columns: Vec<Vec<String>>) -> Result<Self> {
        let schema = Arc::new(Schema::new(
            names
                .iter()
                .map(|n| Field::new(*n, DataType::Utf8, false))
                .collect::<Vec<_>>(),
        ));
        let arrays: Vec<ArrayRef> = columns
            .into_iter()
            .map(|c| Arc::new(StringArray::from(c)) as ArrayRef)
            .collect();
        let batch = RecordBatch::try_new(schema.clone(), arrays)?;
        Ok(QueryResult {
            schema,
            batches: vec![batch],
        })
    }
}

/// The engine's one entry point: a catalog of tables and views, the
/// settings, and [`Session::sql`] to run statements.
pub struct Session {
    config: RwLock<SessionConfig>,
    catalog: RwLock<Catalog>,
    /// Set to cancel the running query (Ctrl-C); cleared when one starts.
    cancel: Arc<AtomicBool>,
    progress: RwLock<Option<Arc<ProgressFn>>>,
    last_run: Mutex<Option<RunStats>>,
    /// The workers queries run on when the `cluster` setting names some.
    cluster: Mutex<Option<Arc<Cluster>>>,
}

fn poisoned<T>(_: T) -> QuarryError {
    QuarryError::exec("internal error: session state poisoned by an earlier panic")
}

impl Session {
    /// A session with an empty catalog and these settings.
    pub fn new(config: SessionConfig) -> Result<Self> {
        let session = Session {
            config: RwLock::new(config),
            catalog: RwLock::new(Catalog::default()),
            cancel: Arc::new(AtomicBool::new(false)),
            progress: RwLock::new(None),
            last_run: Mutex::new(None),
            cluster: Mutex::new(None),
        };
        session.start_cluster()?;
        Ok(session)
    }

    /// Starts (or finds) the workers the `cluster` setting names, and
    /// stops those of the setting before.
    fn start_cluster(&self) -> Result<()> {
        let config = self.config();
        let mut current = self.cluster.lock().map_err(poisoned)?;
        if current.as_ref().map(|c| c.spec()) == config.cluster.as_ref() {
            return Ok(());
        }
        *current = None;
        let Some(spec) = &config.cluster else {
            return Ok(());
        };
        // Local workers share the machine: its cores and budget.
        let mut worker_args = vec![
            "--temp-dir".to_string(),
            config.temp_directory.display().to_string(),
        ];
        if let ClusterSpec::Local(n) = spec {
            worker_args.extend([
                "--threads".to_string(),
                (config.threads / n).max(1).to_string(),
                "--memory-limit".to_string(),
                (config.memory_limit / n).max(1).to_string(),
            ]);
        }
        // The workers run this program, unless QUARRY_WORKER_PROGRAM names
        // another (a test binary is not quarry; a Dask worker's quarry may
        // be installed elsewhere than the driver's).
        let program = match std::env::var_os("QUARRY_WORKER_PROGRAM") {
            Some(p) if !p.is_empty() => std::path::PathBuf::from(p),
            _ => std::env::current_exe().map_err(|e| {
                QuarryError::Io(format!(
                    "cannot find the quarry program to start workers: {e}"
                ))
            })?,
        };
        *current = Some(Arc::new(Cluster::start(spec, &program, &worker_args)?));
        Ok(())
    }

    /// The cluster queries run on, if any (for tests that stop a worker).
    pub fn cluster(&self) -> Option<Arc<Cluster>> {
        self.cluster.lock().ok().and_then(|c| c.clone())
    }

    /// The current settings (a copy).
    pub fn config(&self) -> SessionConfig {
        self.config.read().map(|c| c.clone()).unwrap_or_default()
    }

    /// Runs every statement of `text` and returns the result of the last one.
    pub fn sql(&self, text: &str) -> Result<QueryResult> {
        let mut last = QueryResult::empty();
        self.sql_each(text, &mut |r| {
            last = r;
            Ok(())
        })?;
        Ok(last)
    }

    /// Runs every statement of `text` in order, handing each result to
    /// `on_result`; stops at the first error. The whole text is parsed first,
    /// so a syntax error anywhere runs nothing.
    pub fn sql_each(
        &self,
        text: &str,
        on_result: &mut dyn FnMut(QueryResult) -> Result<()>,
    ) -> Result<()> {
        for statement in parse(text)? {
            let result = match statement {
                // Planning recurses over expressions as deep as the binder
                // allows: give it a stack of its own, not the caller's.
                QuarryStatement::Sql(s) => {
                    stacker::grow(PLANNING_STACK_BYTES, || self.execute(&s))?
                }
                QuarryStatement::CreateExternalTable {
                    name,
                    format,
                    location,
                    or_replace,
                    if_not_exists,
                } => self.create_external_table(
                    &name,
                    &format,
                    &location,
                    or_replace,
                    if_not_exists,
                )?,
            };
            on_result(result)?;
        }
        Ok(())
    }

    /// A flag that cancels the running query when set (from a Ctrl-C
    /// handler, say); the query then fails with `QuarryError::Cancelled`.
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.cancel.clone()
    }

    /// Calls `f` after each finished task of every query (progress bars).
    pub fn set_progress(&self, f: Option<Arc<ProgressFn>>) {
        if let Ok(mut p) = self.progress.write() {
            *p = f;
        }
    }

    /// The figures of the last query run: tasks, workers, operator metrics.
    pub fn last_run_stats(&self) -> Option<RunStats> {
        self.last_run.lock().ok().and_then(|r| r.clone())
    }

    /// Registers a Parquet file, directory or glob as table `name`.
    pub fn register_parquet(&self, name: &str, path: &str) -> Result<()> {
        let mut catalog = self.catalog.write().map_err(poisoned)?;
        let provider = open_table(path, Some("parquet"), catalog.stores())?;
        catalog.insert(name, CatalogEntry::Table(provider), true)
    }

    /// Registers a CSV file (with a header row) or glob as table `name`.
    pub fn register_csv(&self, name: &str, path: &str) -> Result<()> {
        let mut catalog = self.catalog.write().map_err(poisoned)?;
        let provider = open_table(path, Some("csv"), catalog.stores())?;
        catalog.insert(name, CatalogEntry::Table(provider), true)
    }

    /// The files at `location` (a directory, a glob or a file; local or in
    /// an object store) whose extension is `extension`, as paths or URLs.
    pub fn files_at(&self, location: &str, extension: &str) -> Result<Vec<String>> {
        let catalog = self.catalog.read().map_err(poisoned)?;
        let files = crate::catalog::store::list_files(location, extension, catalog.stores())?;
        Ok(files.into_iter().map(|f| f.display).collect())
    }

    /// Names of the tables and views in the catalog, sorted.
    pub fn table_names(&self) -> Vec<String> {
        self.catalog.read().map(|c| c.names()).unwrap_or_default()
    }

    /// Column names of a table or view (for completion), if it exists.
    pub fn column_names(&self, table: &str) -> Option<Vec<String>> {
        let plan = self
            .plan_query(&format!("SELECT * FROM \"{table}\""))
            .ok()?;
        Some(
            plan.schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect(),
        )
    }

    /// The task graph of one query, without running it (`EXPLAIN (FORMAT dot)`).
    pub fn task_graph(&self, sql: &str) -> Result<TaskGraph> {
        self.graph(&self.plan_query(sql)?)
    }

    /// Runs a task graph with the session's settings: one `task_graph`
    /// built, or one decoded from another process (`graph::wire`). The
    /// result has the schema of the graph's output stage.
    pub fn run_graph(&self, graph: &TaskGraph) -> Result<QueryResult> {
        let schema = graph
            .stages
            .iter()
            .find(|s| matches!(s.sink, Sink::Output))
            .map(|s| s.schema.clone())
            .ok_or_else(|| QuarryError::exec("the task graph has no output stage"))?;
        self.cancel.store(false, Ordering::Relaxed);
        let progress = self.progress.read().ok().and_then(|p| p.clone());
        let (batches, stats) = self.run(graph, progress.as_deref(), None)?;
        if let Ok(mut last) = self.last_run.lock() {
            *last = Some(stats);
        }
        Ok(QueryResult { schema, batches })
    }

    /// The session's object stores (with its remote settings), through
    /// which a task graph from elsewhere reopens its files.
    pub fn object_stores(&self) -> Result<Arc<ObjectStores>> {
        Ok(self.catalog.read().map_err(poisoned)?.shared_stores())
    }

    /// Binds and optimizes one query.
    fn plan_query(&self, sql: &str) -> Result<LogicalPlan> {
        let statements = parse(sql)?;
        match statements.as_slice() {
            [QuarryStatement::Sql(s)] => match s.as_ref() {
                Statement::Query(q) => self.plan(q),
                _ => Err(QuarryError::plan("expected a query")),
            },
            _ => Err(QuarryError::plan("expected one query")),
        }
    }

    fn plan(&self, q: &ast::Query) -> Result<LogicalPlan> {
        let catalog = self.catalog.read().map_err(poisoned)?;
        let bound = crate::sql::bind_statement_query(&catalog, q)?;
        crate::optimizer::optimize(bound.plan)
    }

    fn graph(&self, plan: &LogicalPlan) -> Result<TaskGraph> {
        let config = self.config();
        lower_within(plan, config.target_partitions, Some(config.memory_limit))
    }

    /// Runs a query and returns its result and the run's figures.
    pub fn run_query(&self, q: &ast::Query) -> Result<(QueryResult, RunStats)> {
        let mut batches = Vec::new();
        let (schema, stats) = self.run_query_each(q, &self.query_memory(), &mut |b| {
            batches.push(b);
            Ok(())
        })?;
        Ok((QueryResult { schema, batches }, stats))
    }

    /// Runs a query within the memory budget `memory` and hands its result
    /// to `on_batch` a batch at a time, in order, without holding all of it
    /// (COPY … TO, whose writer reserves in the same budget); returns the
    /// result's schema and the run's figures.
    pub fn run_query_each(
        &self,
        q: &ast::Query,
        memory: &Arc<MemoryPool>,
        on_batch: &mut dyn FnMut(RecordBatch) -> Result<()>,
    ) -> Result<(SchemaRef, RunStats)> {
        let plan = self.plan(q)?;
        self.cancel.store(false, Ordering::Relaxed);
        self.compute_recursive(&plan, &mut vec![])?;
        let graph = self.graph(&plan)?;
        let progress = self.progress.read().ok().and_then(|p| p.clone());
        // Keep the planned names (a batch may carry a compatible schema).
        let schema = plan.schema();
        let mut named =
            |b: RecordBatch| on_batch(RecordBatch::try_new(schema.clone(), b.columns().to_vec())?);
        let stats = match self.cluster() {
            Some(cluster) => {
                let config = self.config();
                let exchange = config.exchange_directory.unwrap_or(config.temp_directory);
                let (batches, run) = cluster.run(
                    &graph,
                    &exchange,
                    &*self.object_stores()?,
                    &self.cancel,
                    progress.as_deref(),
                )?;
                batches.into_iter().try_for_each(&mut named)?;
                run.run_stats(&graph, cluster.workers())
            }
            None => {
                let options = RunOptions {
                    memory: memory.clone(),
                    ..self.run_options(progress.as_deref(), None)
                };
                run_graph_each(&graph, options, &mut named)?
            }
        };
        if let Ok(mut last) = self.last_run.lock() {
            *last = Some(stats.clone());
        }
        Ok((schema, stats))
    }

    /// Runs a task graph with the session's settings (`threads` workers
    /// instead of the setting's when given).
    fn run(
        &self,
        graph: &TaskGraph,
        progress: Option<&ProgressFn>,
        threads: Option<usize>,
    ) -> Result<(Vec<RecordBatch>, RunStats)> {
        run_graph(graph, self.run_options(progress, threads))
    }

    /// A memory budget for one query: the session's limit, nothing used.
    pub fn query_memory(&self) -> Arc<MemoryPool> {
        MemoryPool::new(self.config().memory_limit)
    }

    /// How to run a task graph with the session's settings (`threads`
    /// workers instead of the setting's when given).
    fn run_options<'a>(
        &self,
        progress: Option<&'a ProgressFn>,
        threads: Option<usize>,
    ) -> RunOptions<'a> {
        let config = self.config();
        RunOptions {
            threads: threads.unwrap_or(config.threads),
            cancel: self.cancel.clone(),
            progress,
            memory: self.query_memory(),
            temp_dir: config.temp_directory.clone(),
            memory_pause: config.memory_pause,
        }
    }

    fn execute(&self, statement: &Statement) -> Result<QueryResult> {
        match statement {
            Statement::Query(q) => Ok(self.run_query(q)?.0),
            Statement::Explain {
                statement, analyze, ..
            } => self.explain(statement, *analyze),
            Statement::CreateView(v) => {
                if v.materialized {
                    return Err(QuarryError::plan("materialized views are not supported"));
                }
                let name = object_name(&v.name)?;
                // Bind now so that errors show at CREATE time.
                let plan = self.plan(&v.query)?;
                let columns: Vec<String> = v.columns.iter().map(|c| c.name.value.clone()).collect();
                if !columns.is_empty() && columns.len() != plan.schema().fields().len() {
                    return Err(QuarryError::plan(format!(
                        "view '{name}' names {} columns but its query has {}",
                        columns.len(),
                        plan.schema().fields().len()
                    )));
                }
                let entry = CatalogEntry::View {
                    query: v.query.clone(),
                    columns,
                };
                self.catalog
                    .write()
                    .map_err(poisoned)?
                    .insert(&name, entry, v.or_replace)?;
                Ok(QueryResult::empty())
            }
            Statement::CreateTable(ct) => self.create_table(ct),
            Statement::Insert(ins) => self.insert(ins),
            Statement::Copy {
                source,
                to,
                target,
                options,
                legacy_options,
                ..
            } => self.copy(source, *to, target, options, legacy_options),
            Statement::Drop {
                object_type,
                if_exists,
                names,
                ..
            } => self.drop(*object_type, *if_exists, names),
            Statement::ShowTables { .. } => {
                let names = self.table_names();
                QueryResult::strings(&["name"], vec![names])
            }
            Statement::ExplainTable { table_name, .. } => self.describe(table_name),
            Statement::Set(set) => self.set(set),
            Statement::ShowVariable { variable } => {
                let name = variable
                    .iter()
                    .map(|i| i.value.clone())
                    .collect::<Vec<_>>()
                    .join(".");
                if name.eq_ignore_ascii_case("all") {
                    return self.show_all();
                }
                let value = self.setting(&name)?;
                QueryResult::strings(&[name.as_str()], vec![vec![value]])
            }
            other => Err(QuarryError::plan(format!(
                "unsupported statement: {}",
                other
                    .to_string()
                    .split_whitespace()
                    .take(3)
                    .collect::<Vec<_>>()
                    .join(" ")
            ))),
        }
    }

    fn explain(&self, statement: &Statement, analyze: bool) -> Result<QueryResult> {
        let Statement::Query(q) = statement else {
            return Err(QuarryError::plan("EXPLAIN works on queries only"));
        };
        let plan = self.plan(q)?;
        let graph = self.graph(&plan)?;
        let mut text = format!("Logical plan:\n{plan}\nTask graph:\n");
        if analyze {
            let (result, stats) = self.run_query(q)?;
            text.push_str(&graph.display_with_metrics(&stats));
            let busy: Vec<String> = stats.busy.iter().map(|d| format!("{:.1?}", d)).collect();
            // (a cluster's workers keep their own budgets, not counted here)
            let peak = match stats.cluster {
                Some(_) => "(not counted: each worker has its own budget)".to_string(),
                None => format!(
                    "{} reserved of a {} limit",
                    format_bytes(stats.peak_memory),
                    format_bytes(self.config().memory_limit)
                ),
            };
            text.push_str(&format!(
                "\nRun: {} rows in {:.1?}; {} tasks read {} rows, on {} workers (busy: {})\n\
                 Memory: peak {}; spilled {} in {} files; {} pauses\n\
                 I/O: fetched {} from files and object stores\n",
                result.num_rows(),
                stats.elapsed,
                stats.tasks,
                stats.rows_read,
                stats.busy.len(),
                busy.join(", "),
                peak,
                format_bytes(stats.spilled_bytes as usize),
                stats.spill_files,
                stats.pauses,
                format_bytes(stats.bytes_fetched as usize)
            ));
            if let Some(c) = &stats.cluster {
                text.push_str(&format!(
                    "Cluster: {} tasks run again; {:.1?} per task beyond its run on the worker; \
                     exchanged {} in {} files\n",
                    stats.retries,
                    c.overhead,
                    format_bytes(c.exchange_bytes as usize),
                    c.exchange_files
                ));
            }
        } else {
            text.push_str(&graph.to_string());
        }
        let lines: Vec<String> = text.lines().map(|l| l.to_string()).collect();
        QueryResult::strings(&["plan"], vec![lines])
    }

    fn create_table(&self, ct: &ast::CreateTable) -> Result<QueryResult> {
        let name = object_name(&ct.name)?;
        let exists = self.catalog.read().map_err(poisoned)?.contains(&name);
        if exists && ct.if_not_exists {
            return Ok(QueryResult::empty());
        }
        if exists && !ct.or_replace {
            return Err(QuarryError::plan(format!(
                "table or view '{name}' already exists"
            )));
        }
        let provider: Arc<dyn crate::catalog::TableProvider> = if let Some(q) = &ct.query {
            check_table_columns(ct)?;
            let (result, _) = self.run_query(q)?;
            let (schema, batches) = declared_columns(ct, result.schema, result.batches)?;
            Arc::new(MemTable::new(schema, batches))
        } else {
            // an empty table of the declared columns, for INSERT and COPY FROM
            check_table_columns(ct)?;
            if ct.columns.is_empty() {
                return Err(QuarryError::plan(format!(
                    "CREATE TABLE {name} needs its columns (name type, …) or AS SELECT …"
                )));
            }
            let fields = ct
                .columns
                .iter()
                .map(|c| {
                    Ok(Field::new(
                        c.name.value.clone(),
                        crate::sql::sql_data_type(&c.data_type, None)?,
                        true,
                    ))
                })
                .collect::<Result<Vec<_>>>()?;
            Arc::new(MemTable::new(Arc::new(Schema::new(fields)), vec![]))
        };
        self.catalog.write().map_err(poisoned)?.insert(
            &name,
            CatalogEntry::Table(provider),
            true,
        )?;
        Ok(QueryResult::empty())
    }

    fn create_external_table(
        &self,
        name: &str,
        format: &str,
        location: &str,
        or_replace: bool,
        if_not_exists: bool,
    ) -> Result<QueryResult> {
        let mut catalog = self.catalog.write().map_err(poisoned)?;
        if catalog.contains(name) {
            if if_not_exists {
                return Ok(QueryResult::empty());
            }
            if !or_replace {
                return Err(QuarryError::plan(format!(
                    "table or view '{name}' already exists"
                )));
            }
        }
        let provider = open_table(location, Some(format), catalog.stores())?;
        catalog.insert(name, CatalogEntry::Table(provider), true)?;
        Ok(QueryResult::empty())
    }

    fn drop(
        &self,
        object_type: ObjectType,
        if_exists: bool,
        names: &[ast::ObjectName],
    ) -> Result<QueryResult> {
        let want_view = match object_type {
            ObjectType::Table => false,
            ObjectType::View => true,
            other => return Err(QuarryError::plan(format!("DROP {other} is not supported"))),
        };
        let mut catalog = self.catalog.write().map_err(poisoned)?;
        for n in names {
            let name = object_name(n)?;
            match catalog.get(&name) {
                None if if_exists => {}
                None => {
                    let hint = catalog
                        .closest_name(&name)
                        .map(|c| format!(", did you mean '{c}'?"))
                        .unwrap_or_default();
                    let kind = if want_view { "view" } else { "table" };
                    return Err(QuarryError::plan(format!(
                        "{kind} '{name}' not found{hint}"
                    )));
                }
                Some(CatalogEntry::View { .. }) if !want_view => {
                    return Err(QuarryError::plan(format!(
                        "'{name}' is a view: use DROP VIEW"
                    )))
                }
                Some(CatalogEntry::Table(_)) if want_view => {
                    return Err(QuarryError::plan(format!(
                        "'{name}' is a table: use DROP TABLE"
                    )))
                }
                Some(_) => {
                    catalog.remove(&name);
                }
            }
        }
        Ok(QueryResult::empty())
    }

    fn describe(&self, table: &ast::ObjectName) -> Result<QueryResult> {
        object_name(table)?;
        let schema = self.plan_query(&format!("SELECT * FROM {table}"))?.schema();
        let names = schema.fields().iter().map(|f| f.name().clone()).collect();
        let types = schema
            .fields()
            .iter()
            .map(|f| sql_type_name(f.data_type()))
            .collect();
        // As DuckDB: no NOT NULL constraints exist, so every column may hold NULL.
        let nulls = vec!["YES".to_string(); schema.fields().len()];
        QueryResult::strings(
            &["column_name", "column_type", "null"],
            vec![names, types, nulls],
        )
    }

    /// The value of a setting as `SHOW` prints it (secrets masked).
    fn setting(&self, name: &str) -> Result<String> {
        let catalog = self.catalog.read().map_err(poisoned)?;
        match catalog.stores().option(name) {
            Some(value) => Ok(value),
            None => self.config().get(name),
        }
    }

    /// `SHOW ALL`: every setting and its value, secrets masked.
    fn show_all(&self) -> Result<QueryResult> {
        let names: Vec<String> = SessionConfig::NAMES
            .iter()
            .copied()
            .chain(RemoteOptions::names())
            .map(str::to_string)
            .collect();
        let values = names
            .iter()
            .map(|n| self.setting(n))
            .collect::<Result<Vec<_>>>()?;
        QueryResult::strings(&["name", "value"], vec![names, values])
    }

    fn set(&self, set: &ast::Set) -> Result<QueryResult> {
        let ast::Set::SingleAssignment {
            variable, values, ..
        } = set
        else {
            return Err(QuarryError::plan(
                "unsupported SET statement: use SET name = value",
            ));
        };
        let name = variable.to_string();
        let [value] = values.as_slice() else {
            return Err(QuarryError::Config(format!("SET {name} takes one value")));
        };
        let value = match value {
            ast::Expr::Value(v) => match &v.value {
                ast::Value::SingleQuotedString(s) => s.clone(),
                other => other.to_string(),
            },
            other => other.to_string(),
        };
        if RemoteOptions::knows(&name) {
            let catalog = self.catalog.read().map_err(poisoned)?;
            catalog.stores().set_option(&name, &value)?;
        } else {
            let before = self.config();
            self.config.write().map_err(poisoned)?.set(&name, &value)?;
            if name.eq_ignore_ascii_case("cluster") {
                if let Err(e) = self.start_cluster() {
                    // (the setting stays what it was, as after any refused SET)
                    *self.config.write().map_err(poisoned)? = before;
                    return Err(e);
                }
            }
        }
        Ok(QueryResult::empty())
    }
}

/// A one-part table name.
fn object_name(name: &ast::ObjectName) -> Result<String> {
    match name.0.as_slice() {
        [part] => part
            .as_ident()
            .map(|i| i.value.clone())
            .ok_or_else(|| QuarryError::plan(format!("invalid name '{name}'"))),
        _ => Err(QuarryError::plan(format!(
            "qualified names like '{name}' are not supported: use a plain name"
        ))),
    }
}

/// What `CREATE TABLE t (cols…) AS SELECT` declares that quarry cannot keep
/// is refused: constraints and column options would be silently dropped.
fn check_table_columns(ct: &ast::CreateTable) -> Result<()> {
    if let Some(c) = ct.constraints.first() {
        return Err(QuarryError::plan(format!(
            "table constraints are not supported: {c}"
        )));
    }
    for col in &ct.columns {
        if let Some(o) = col.options.first() {
            return Err(QuarryError::plan(format!(
                "column constraints and options are not supported: {} on column {}",
                o.option, col.name
            )));
        }
    }
    Ok(())
}

/// The query's result under the column names (and types, cast to) that
/// `CREATE TABLE t (cols…) AS SELECT` declares, as Postgres and DuckDB
/// give them.
fn declared_columns(
    ct: &ast::CreateTable,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    if ct.columns.is_empty() {
        return Ok((schema, batches));
    }
    if ct.columns.len() != schema.fields().len() {
        return Err(QuarryError::plan(format!(
            "CREATE TABLE {} names {} columns but its query has {}",
            ct.name,
            ct.columns.len(),
            schema.fields().len()
        )));
    }
    let mut fields = Vec::new();
    for (col, field) in ct.columns.iter().zip(schema.fields()) {
        let data_type = match col.data_type {
            ast::DataType::Unspecified => field.data_type().clone(),
            ref t => crate::sql::sql_data_type(t, None)?,
        };
        fields.push(Field::new(col.name.value.clone(), data_type, true));
    }
    let declared = Arc::new(Schema::new(fields));
    let batches = batches
        .iter()
        .map(|b| {
            let columns = b
                .columns()
                .iter()
                .zip(declared.fields())
                .map(|(c, f)| crate::exec::expr::cast_checked(c, f.data_type()))
                .collect::<Result<Vec<_>>>()?;
            Ok(RecordBatch::try_new(declared.clone(), columns)?)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((declared, batches))
}
