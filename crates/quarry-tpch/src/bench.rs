//! `quarry tpch bench`: quarry, DuckDB and Polars side by side on the same
//! TPC-H Parquet files, with the answers checked against each other.
//!
//! 1. The data: `data/tpch-sf<N>` (or `--data`) is generated when it is
//!    missing or empty; a directory with missing tables, tables of another
//!    scale factor or foreign files is refused. Each file is then read once,
//!    so that every engine finds the data in the OS page cache.
//! 2. The engines run one after the other, each in its own child process
//!    ([`worker`]): quarry as `quarry tpch bench-worker`, DuckDB and Polars
//!    through `tpch/peers.py` in the virtual environment `tpch/.venv` that
//!    the harness makes from `tpch/requirements.txt` ([`peers`]). Each runs
//!    every query `--runs` times and sends back the times, the answer and
//!    its peak RSS.
//! 3. The answers are compared pairwise ([`compare`]), and the report
//!    ([`report`]) is printed as a table and written as JSON and SVG to
//!    `tpch/results/<date>-<commit>-sf<N>.{json,svg}`.
//!
//! Bad arguments and bad data directories are errors before anything runs.
//! A peer that cannot run is reported as unavailable, with the reason, and
//! the others still run; the command then exits with an error, after the
//! report.

pub mod compare;
pub mod peers;
pub mod report;
pub mod system;
pub mod worker;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::{default_out_dir, gen, TABLES};
use quarry_core::error::{QuarryError, Result};
use worker::{ChildCommand, EngineOutcome, Progress};

/// The engines the harness can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Engine {
    Quarry,
    /// quarry on the cluster of `--cluster`, beside local quarry in one run.
    QuarryCluster,
    Duckdb,
    Polars,
}

impl Engine {
    /// The engines run when `--engines` is not given (and `quarry-cluster`
    /// after `quarry` when `--cluster` is).
    pub const ALL: [Engine; 3] = [Engine::Quarry, Engine::Duckdb, Engine::Polars];

    pub fn name(self) -> &'static str {
        match self {
            Engine::Quarry => "quarry",
            Engine::QuarryCluster => "quarry-cluster",
            Engine::Duckdb => "duckdb",
            Engine::Polars => "polars",
        }
    }

    fn is_quarry(self) -> bool {
        matches!(self, Engine::Quarry | Engine::QuarryCluster)
    }
}

/// The options of `quarry tpch bench`.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub sf: f64,
    /// Data directory (default `data/tpch-sf<N>`).
    pub data: Option<PathBuf>,
    /// Engines in the order to run (default: all three).
    pub engines: Vec<Engine>,
    /// Query numbers (default: 1 to 22).
    pub queries: Vec<usize>,
    pub runs: usize,
    pub threads: Option<usize>,
    /// quarry's and DuckDB's `memory_limit` (e.g. `4GB`); Polars has none.
    pub memory_limit: Option<String>,
    /// The cluster of the engine `quarry-cluster` (`local:2`, `quarry://…`,
    /// `dask://…`).
    pub cluster: Option<String>,
    /// Where the JSON and SVG go (default `tpch/results`).
    pub results: Option<PathBuf>,
    /// Longest silence of an engine during a query before it is stopped.
    pub timeout: Duration,
    /// The peers' virtual environment (default `tpch/.venv`).
    pub venv: Option<PathBuf>,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            sf: 1.0,
            data: None,
            engines: vec![],
            queries: vec![],
            runs: 3,
            threads: None,
            memory_limit: None,
            cluster: None,
            results: None,
            timeout: Duration::from_secs(900),
            venv: None,
        }
    }
}

/// Checks a query number: 1 to 22.
pub fn parse_query(text: &str) -> std::result::Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if crate::query(n).is_some() => Ok(n),
        Ok(n) => Err(format!("no TPC-H query {n}: queries are numbered 1 to 22")),
        Err(_) => Err(format!(
            "'{text}' is not a query number: queries are numbered 1 to 22"
        )),
    }
}

/// Checks a memory limit for DuckDB: a positive number and a unit (`B`,
/// `KB`, `MB`, `GB`, `TB`, `KiB`, `MiB`, `GiB`, `TiB`); returns it with the
/// unit spelled canonically (`4gb` → `4GB`).
pub fn parse_memory_limit(text: &str) -> std::result::Result<String, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let unit = unit.trim();
    let bad = || {
        format!(
            "invalid memory limit '{text}': expected a positive number and a unit, \
             e.g. 4GB, 512MiB (units: B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)"
        )
    };
    let value: f64 = number.parse().map_err(|_| bad())?;
    if value <= 0.0 || !value.is_finite() {
        return Err(bad());
    }
    const UNITS: [&str; 9] = ["B", "KB", "MB", "GB", "TB", "KiB", "MiB", "GiB", "TiB"];
    let unit = UNITS
        .iter()
        .find(|u| u.eq_ignore_ascii_case(unit))
        .ok_or_else(bad)?;
    Ok(format!("{number}{unit}"))
}

/// Checks the options; fills in the defaults.
fn validate(mut o: BenchOptions) -> Result<BenchOptions> {
    gen::validate_sf(o.sf)?;
    if o.engines.is_empty() {
        o.engines = Engine::ALL.to_vec();
        if o.cluster.is_some() {
            o.engines.insert(1, Engine::QuarryCluster);
        }
    }
    match (&o.cluster, o.engines.contains(&Engine::QuarryCluster)) {
        (None, true) => {
            return Err(QuarryError::Config(
                "the engine quarry-cluster runs on the cluster of --cluster: add e.g. --cluster local:2"
                    .into(),
            ))
        }
        (Some(c), false) => {
            return Err(QuarryError::Config(format!(
                "--cluster {c} is the cluster of the engine quarry-cluster: list it in --engines (e.g. --engines quarry,quarry-cluster,duckdb)"
            )))
        }
        _ => {}
    }
    let mut engines = Vec::new();
    for e in o.engines {
        if !engines.contains(&e) {
            engines.push(e);
        }
    }
    o.engines = engines;
    if let Some(url) = remote_data(&o) {
        if let Some(peer) = o.engines.iter().find(|e| !e.is_quarry()) {
            return Err(QuarryError::Config(format!(
                "--data {url}: {} reads local files only in this harness (DuckDB's httpfs extension comes from an extension server this machine may not reach): add --engines quarry",
                peer.name()
            )));
        }
    }
    if o.queries.is_empty() {
        o.queries = (1..=22).collect();
    }
    let mut queries = Vec::new();
    for q in o.queries {
        parse_query(&q.to_string()).map_err(QuarryError::Config)?;
        if !queries.contains(&q) {
            queries.push(q);
        }
    }
    o.queries = queries;
    if o.runs == 0 {
        return Err(QuarryError::Config(
            "invalid number of runs 0: it must be at least 1".into(),
        ));
    }
    if o.threads == Some(0) {
        return Err(QuarryError::Config(
            "invalid number of threads 0: it must be at least 1".into(),
        ));
    }
    if let Some(m) = &o.memory_limit {
        o.memory_limit = Some(parse_memory_limit(m).map_err(QuarryError::Config)?);
    }
    if o.timeout.is_zero() {
        return Err(QuarryError::Config(
            "invalid timeout 0: it must be positive".into(),
        ));
    }
    Ok(o)
}

/// The URL of `--data` when it names an object store (`s3://bucket/dir`):
/// quarry reads it in place, with the store's credentials from the standard
/// environment variables (`AWS_ACCESS_KEY_ID`, `AWS_ENDPOINT`, …).
fn remote_data(o: &BenchOptions) -> Option<String> {
    let data = o.data.as_ref()?.to_str()?;
    quarry_core::catalog::store::is_remote(data).then(|| data.trim_end_matches('/').to_string())
}

/// Every TPC-H table is an object under `url` that quarry can reach (with
/// the credentials of the environment): bad remote data is refused before
/// anything runs, as a bad local directory is.
fn check_remote_tables(url: &str) -> Result<()> {
    let stores = quarry_core::catalog::ObjectStores::default();
    for table in gen::TABLES {
        quarry_core::catalog::store::list_files(
            &format!("{url}/{table}.parquet"),
            "parquet",
            &stores,
        )
        .map_err(|e| QuarryError::Config(format!("--data {url}: {e}")))?;
    }
    Ok(())
}

/// The quarry checkout: the first of the current directory and its parents
/// that holds `tpch/peers.py`, else the one this binary was built from.
fn project_root() -> Option<PathBuf> {
    let has = |d: &Path| d.join("tpch").join("peers.py").is_file();
    if let Ok(cwd) = std::env::current_dir() {
        if let Some(d) = cwd.ancestors().find(|d| has(d)) {
            return Some(d.to_path_buf());
        }
    }
    // this crate is crates/quarry-tpch of the checkout
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2)?;
    has(built).then(|| built.to_path_buf())
}

fn is_empty_dir(dir: &Path) -> bool {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(_) => !dir.exists(),
    }
}

/// Checks that `dir` holds the 8 tables of TPC-H at scale factor `sf`: the
/// files, their columns and their row counts.
pub fn check_data_dir(dir: &Path, sf: f64) -> Result<()> {
    let hint = format!(
        "(to make it: quarry tpch gen --sf {sf} --out {})",
        system::shell_quote(&dir.display().to_string())
    );
    let missing: Vec<String> = TABLES
        .iter()
        .map(|t| format!("{t}.parquet"))
        .filter(|f| !dir.join(f).is_file())
        .collect();
    if !missing.is_empty() {
        return Err(QuarryError::Config(format!(
            "data directory {} is missing TPC-H tables: {} {hint}",
            dir.display(),
            missing.join(", ")
        )));
    }
    for table in TABLES {
        let path = dir.join(format!("{table}.parquet"));
        let bad = |why: String| {
            QuarryError::Config(format!(
                "data directory {}: {} is not TPC-H {table} at SF {sf}: {why} {hint}",
                dir.display(),
                path.display()
            ))
        };
        let file = std::fs::File::open(&path).map_err(|e| bad(e.to_string()))?;
        let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|e| bad(format!("not a readable Parquet file ({e})")))?;
        if let Some(expected) = gen::table_schema(table) {
            let actual = builder.schema();
            let absent: Vec<&str> = expected
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .filter(|n| actual.field_with_name(n).is_err())
                .collect();
            if !absent.is_empty() {
                return Err(bad(format!("no column {}", absent.join(", "))));
            }
        }
        let rows = u64::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0);
        if let Some(range) = gen::expected_rows(table, sf) {
            if !range.contains(&rows) {
                let want = if range.start() == range.end() {
                    range.start().to_string()
                } else {
                    format!("{} to {}", range.start(), range.end())
                };
                return Err(bad(format!(
                    "it has {rows} rows, SF {sf} has {want} (made at another scale factor?)"
                )));
            }
        }
    }
    Ok(())
}

/// Makes sure the data is there: generated into an empty or missing
/// directory, checked otherwise.
fn prepare_data(dir: &Path, sf: f64) -> Result<()> {
    if is_empty_dir(dir) {
        eprintln!("no TPC-H data in {}: generating SF {sf}", dir.display());
        crate::generate_with_bar(sf, dir, &gen::GenerateOptions::default(), &|l| {
            eprintln!("{l}")
        })?;
    }
    check_data_dir(dir, sf)
}

/// Reads every table file once, so that all engines start from a warm OS
/// page cache (the first engine would otherwise pay for the disk).
fn warm_page_cache(dir: &Path) -> Result<()> {
    for t in TABLES {
        let path = dir.join(format!("{t}.parquet"));
        let mut f = std::fs::File::open(&path)
            .map_err(|e| QuarryError::Io(format!("cannot read {}: {e}", path.display())))?;
        std::io::copy(&mut f, &mut std::io::sink())
            .map_err(|e| QuarryError::Io(format!("cannot read {}: {e}", path.display())))?;
    }
    Ok(())
}

/// Progress on stderr: a bar on a terminal, a line per query otherwise.
struct Ui {
    bar: Option<ProgressBar>,
}

impl Ui {
    fn new(engine: &str, total: u64) -> Ui {
        let target = ProgressDrawTarget::stderr();
        if target.is_hidden() {
            return Ui { bar: None };
        }
        let bar = ProgressBar::with_draw_target(Some(total), target);
        let style = ProgressStyle::with_template(
            "{prefix:>7} [{bar:30}] {pos}/{len} runs  {msg}  {elapsed}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(engine.to_string());
        Ui { bar: Some(bar) }
    }

    fn line(&self, text: &str) {
        match &self.bar {
            Some(b) => b.println(text),
            None => eprintln!("{text}"),
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

fn progress_handler<'a>(
    engine: &'a str,
    runs: usize,
    ui: &'a Ui,
    done: &'a std::sync::atomic::AtomicUsize,
) -> impl Fn(Progress<'_>) + 'a {
    use std::sync::atomic::Ordering;
    move |p| match p {
        Progress::Run { query, run } => {
            if let Some(b) = &ui.bar {
                b.set_position((done.load(Ordering::Relaxed) * runs + run - 1) as u64);
                b.set_message(format!("Q{query:02} run {run}/{runs}"));
            }
        }
        Progress::Query { query, outcome } => {
            done.fetch_add(1, Ordering::Relaxed);
            if let Some(b) = &ui.bar {
                b.set_position((done.load(Ordering::Relaxed) * runs) as u64);
            }
            let text = match (&outcome.error, report::median(&outcome.seconds)) {
                (None, Some(m)) => format!(
                    "{engine:>7} Q{query:02} {m:>9.3} s  ({} rows)",
                    outcome.answer.as_ref().map_or(0, |a| a.rows.len())
                ),
                (Some(e), _) => format!("{engine:>7} Q{query:02}    failed: {}", first_line(e)),
                (None, None) => format!("{engine:>7} Q{query:02}    no runs"),
            };
            ui.line(&text);
        }
    }
}

fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or("");
    if line.chars().count() > 150 {
        format!("{}…", line.chars().take(149).collect::<String>())
    } else {
        line.to_string()
    }
}

fn path_text(p: &Path) -> Result<String> {
    p.to_str()
        .map(str::to_string)
        .ok_or_else(|| QuarryError::Config(format!("path is not UTF-8: {}", p.display())))
}

/// Runs quarry's side: locally, or on `cluster`.
fn run_quarry(o: &BenchOptions, data: &Path, cluster: Option<&str>) -> Result<EngineOutcome> {
    let exe = std::env::current_exe()
        .map_err(|e| QuarryError::Io(format!("cannot find the quarry binary: {e}")))?;
    let data = path_text(data)?;
    let make = |left: &[usize]| {
        let mut args: Vec<String> = vec![
            "tpch".into(),
            "bench-worker".into(),
            "--data".into(),
            data.clone(),
            "--queries".into(),
            join(left),
            "--runs".into(),
            o.runs.to_string(),
        ];
        if let Some(t) = o.threads {
            args.extend(["--threads".into(), t.to_string()]);
        }
        if let Some(m) = &o.memory_limit {
            args.extend(["--memory-limit".into(), m.clone()]);
        }
        if let Some(c) = cluster {
            args.extend(["--cluster".into(), c.to_string()]);
        }
        ChildCommand {
            program: exe.clone(),
            args,
            env: vec![],
            stdin: None,
        }
    };
    let name = match cluster {
        None => Engine::Quarry,
        Some(_) => Engine::QuarryCluster,
    };
    Ok(drive_with_ui(name.name(), o, &make))
}

fn join(queries: &[usize]) -> String {
    queries
        .iter()
        .map(|q| q.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn drive_with_ui(
    engine: &str,
    o: &BenchOptions,
    make: &dyn Fn(&[usize]) -> ChildCommand,
) -> EngineOutcome {
    let ui = Ui::new(engine, (o.queries.len() * o.runs) as u64);
    let done = std::sync::atomic::AtomicUsize::new(0);
    let handler = progress_handler(engine, o.runs, &ui, &done);
    let outcome = worker::drive(make, &o.queries, o.timeout, &handler);
    ui.finish();
    if let Some(e) = &outcome.fatal {
        eprintln!("{engine:>7} could not run: {}", first_line(e));
    }
    outcome
}

fn run_peer(
    engine: Engine,
    o: &BenchOptions,
    data: &Path,
    python: &Path,
    script: &Path,
) -> Result<EngineOutcome> {
    let data = path_text(data)?;
    let mut env = vec![
        ("PYTHONUNBUFFERED".to_string(), "1".to_string()),
        ("PYTHONDONTWRITEBYTECODE".to_string(), "1".to_string()),
    ];
    if let Some(t) = o.threads {
        env.push(("POLARS_MAX_THREADS".into(), t.to_string()));
    }
    let make = |left: &[usize]| {
        let job = serde_json::json!({
            "engine": engine.name(),
            "data": data,
            "queries": left
                .iter()
                .map(|q| serde_json::json!({
                    "query": q,
                    "sql": crate::query(*q).unwrap_or_default(),
                }))
                .collect::<Vec<_>>(),
            "runs": o.runs,
            "threads": o.threads,
            "memory_limit": o.memory_limit,
        });
        ChildCommand {
            program: python.to_path_buf(),
            args: vec![script.display().to_string()],
            env: env.clone(),
            stdin: Some(job.to_string()),
        }
    };
    Ok(drive_with_ui(engine.name(), o, &make))
}

/// `quarry tpch bench`.
pub fn run(options: BenchOptions) -> Result<()> {
    let o = validate(options)?;
    let started = SystemTime::now();
    let machine = system::Machine::this();
    let root = project_root();
    let data_dir = o.data.clone().unwrap_or_else(|| default_out_dir(o.sf));
    let results_dir = o.results.clone().unwrap_or_else(|| match &root {
        Some(r) => r.join("tpch").join("results"),
        None => PathBuf::from("tpch").join("results"),
    });

    let remote = remote_data(&o);
    let data_abs = match &remote {
        Some(url) => {
            check_remote_tables(url)?;
            PathBuf::from(url)
        }
        None => {
            prepare_data(&data_dir, o.sf)?;
            std::fs::canonicalize(&data_dir).map_err(|e| {
                QuarryError::Io(format!("cannot resolve {}: {e}", data_dir.display()))
            })?
        }
    };
    eprintln!(
        "TPC-H SF {} from {}: {} queries × {} runs, engines: {}",
        o.sf,
        data_dir.display(),
        o.queries.len(),
        o.runs,
        o.engines
            .iter()
            .map(|e| e.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if remote.is_none() {
        warm_page_cache(&data_abs)?;
    }

    // The peers' Python, made at most once.
    let mut python: Option<std::result::Result<(PathBuf, PathBuf), String>> = None;
    let mut runs: Vec<report::EngineRun> = Vec::new();
    for &engine in &o.engines {
        let outcome = match engine {
            Engine::Quarry => run_quarry(&o, &data_abs, None).map_err(|e| e.to_string()),
            Engine::QuarryCluster => {
                run_quarry(&o, &data_abs, o.cluster.as_deref()).map_err(|e| e.to_string())
            }
            peer => {
                let env = python.get_or_insert_with(|| {
                    let root = root.as_ref().ok_or_else(|| {
                        "tpch/peers.py not found: run from the quarry repository".to_string()
                    })?;
                    let venv = o
                        .venv
                        .clone()
                        .unwrap_or_else(|| root.join("tpch").join(".venv"));
                    let py = peers::ensure_venv(
                        &venv,
                        &root.join("tpch").join("requirements.txt"),
                        &|l| eprintln!("{l}"),
                    )?;
                    Ok((py, root.join("tpch").join("peers.py")))
                });
                match env {
                    Err(why) => {
                        eprintln!("{:>7} unavailable: {why}", peer.name());
                        Err(why.clone())
                    }
                    Ok((py, script)) => {
                        run_peer(peer, &o, &data_abs, py, script).map_err(|e| e.to_string())
                    }
                }
            }
        };
        runs.push((engine.name().to_string(), outcome));
    }

    let (date, started_at) = system::utc_date_and_time(started);
    let meta = report::Meta {
        quarry_version: env!("CARGO_PKG_VERSION").into(),
        git_commit: root.as_deref().and_then(system::git_commit),
        date,
        started_at,
        command: system::command_line(),
        scale_factor: o.sf,
        data_dir: data_dir.display().to_string(),
        runs: o.runs,
        threads: o.threads,
        memory_limit: o.memory_limit.clone(),
        timeout_seconds: o.timeout.as_secs_f64(),
        load_average_at_end: system::Machine::this().load_average,
        machine,
    };
    let report = report::build(meta, &o.queries, runs, &[]);
    print!("{}", report::render_table(&report));
    let (json, svg) = report::write_reports(&report, &results_dir)?;
    println!("report: {}\nchart:  {}", json.display(), svg.display());
    if report.summary.ok {
        Ok(())
    } else {
        Err(QuarryError::Execution(format!(
            "the benchmark ran with {} problem(s) (listed above)",
            report.summary.problems.len()
        )))
    }
}

/// `quarry tpch report FILE.json`: prints the table of a saved report and
/// writes its chart again beside it.
pub fn show_report(json: &Path) -> Result<()> {
    let text = std::fs::read_to_string(json)
        .map_err(|e| QuarryError::Io(format!("cannot read {}: {e}", json.display())))?;
    let report: report::Report = serde_json::from_str(&text).map_err(|e| {
        QuarryError::Config(format!(
            "{} is not a report of quarry tpch bench: {e}",
            json.display()
        ))
    })?;
    print!("{}", report::render_table(&report));
    let svg = json.with_extension("svg");
    let tmp = json.with_extension(format!("svg.tmp-{}", std::process::id()));
    std::fs::write(&tmp, report::render_svg(&report)?)
        .and_then(|()| std::fs::rename(&tmp, &svg))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            QuarryError::Io(format!("cannot write {}: {e}", svg.display()))
        })?;
    println!("chart:  {}", svg.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_numbers() {
        assert_eq!(parse_query("5"), Ok(5));
        assert_eq!(parse_query(" 22 "), Ok(22));
        assert!(parse_query("23").unwrap_err().contains("no TPC-H query 23"));
        assert!(parse_query("0").unwrap_err().contains("no TPC-H query 0"));
        assert!(parse_query("q5")
            .unwrap_err()
            .contains("not a query number"));
    }

    #[test]
    fn memory_limits() {
        assert_eq!(parse_memory_limit("4GB").unwrap(), "4GB");
        assert_eq!(parse_memory_limit("4gb").unwrap(), "4GB");
        assert_eq!(parse_memory_limit("1.5 gib").unwrap(), "1.5GiB");
        assert_eq!(parse_memory_limit("512MiB").unwrap(), "512MiB");
        for bad in ["", "4", "GB", "0GB", "-1GB", "4 parsecs", "4GBB", "1e3MB"] {
            let err = parse_memory_limit(bad).unwrap_err();
            assert!(err.contains("invalid memory limit"), "{bad}: {err}");
        }
    }

    #[test]
    fn options_are_checked_and_defaulted() {
        let o = validate(BenchOptions::default()).unwrap();
        assert_eq!(o.engines, Engine::ALL.to_vec());
        assert_eq!(o.queries, (1..=22).collect::<Vec<_>>());
        let o = validate(BenchOptions {
            engines: vec![Engine::Polars, Engine::Quarry, Engine::Polars],
            queries: vec![9, 1, 9],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(o.engines, vec![Engine::Polars, Engine::Quarry]);
        assert_eq!(o.queries, vec![9, 1]);
        let bad = [
            BenchOptions {
                sf: 0.0,
                ..Default::default()
            },
            BenchOptions {
                sf: -1.0,
                ..Default::default()
            },
            BenchOptions {
                queries: vec![23],
                ..Default::default()
            },
            BenchOptions {
                runs: 0,
                ..Default::default()
            },
            BenchOptions {
                threads: Some(0),
                ..Default::default()
            },
            BenchOptions {
                memory_limit: Some("lots".into()),
                ..Default::default()
            },
            BenchOptions {
                timeout: Duration::ZERO,
                ..Default::default()
            },
        ];
        for o in bad {
            let shown = format!("{o:?}");
            assert!(
                matches!(validate(o), Err(QuarryError::Config(_))),
                "{shown}"
            );
        }
    }

    #[test]
    fn the_cluster_engine_and_its_cluster_come_together() {
        // --cluster alone adds quarry-cluster after quarry
        let o = validate(BenchOptions {
            cluster: Some("local:2".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            o.engines,
            [
                Engine::Quarry,
                Engine::QuarryCluster,
                Engine::Duckdb,
                Engine::Polars
            ]
        );
        let err = validate(BenchOptions {
            engines: vec![Engine::QuarryCluster],
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("add e.g. --cluster local:2"), "{err}");
        let err = validate(BenchOptions {
            engines: vec![Engine::Quarry, Engine::Duckdb],
            cluster: Some("local:2".into()),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("--cluster local:2 is the cluster of the engine quarry-cluster"),
            "{err}"
        );
    }

    #[test]
    fn data_dir_checks() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let err = check_data_dir(d, 0.01).unwrap_err().to_string();
        assert!(
            err.contains("missing TPC-H tables: lineitem.parquet"),
            "{err}"
        );
        assert!(err.contains("quarry tpch gen --sf 0.01 --out"), "{err}");
        crate::generate(0.01, d).unwrap();
        check_data_dir(d, 0.01).unwrap();
        // another scale factor
        let err = check_data_dir(d, 0.02).unwrap_err().to_string();
        assert!(err.contains("made at another scale factor"), "{err}");
        // a file of another table
        std::fs::copy(d.join("nation.parquet"), d.join("region.parquet")).unwrap();
        let err = check_data_dir(d, 0.01).unwrap_err().to_string();
        assert!(err.contains("region.parquet is not TPC-H region"), "{err}");
        assert!(err.contains("no column r_regionkey"), "{err}");
        // not Parquet at all
        std::fs::write(d.join("region.parquet"), "hello").unwrap();
        let err = check_data_dir(d, 0.01).unwrap_err().to_string();
        assert!(err.contains("not a readable Parquet file"), "{err}");
        // a missing table
        std::fs::remove_file(d.join("part.parquet")).unwrap();
        let err = check_data_dir(d, 0.01).unwrap_err().to_string();
        assert!(err.contains("missing TPC-H tables: part.parquet"), "{err}");
    }

    #[test]
    fn empty_dirs_get_data_foreign_ones_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("fresh");
        prepare_data(&fresh, 0.01).unwrap();
        check_data_dir(&fresh, 0.01).unwrap();
        let foreign = dir.path().join("foreign");
        std::fs::create_dir_all(&foreign).unwrap();
        std::fs::write(foreign.join("notes.txt"), "mine").unwrap();
        let err = prepare_data(&foreign, 0.01).unwrap_err().to_string();
        assert!(err.contains("missing TPC-H tables"), "{err}");
        assert_eq!(std::fs::read_dir(&foreign).unwrap().count(), 1);
    }
}
