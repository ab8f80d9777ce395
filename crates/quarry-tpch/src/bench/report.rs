//! The report of a benchmark: what it holds ([`Report`]), how it is made
//! from the engines' outcomes ([`build`]), and its three forms: the table
//! on stdout ([`render_table`]), the JSON file and the SVG bar chart
//! ([`write_reports`], [`render_svg`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::{Deserialize, Serialize};

use super::compare::compare_answers;
use super::system::Machine;
use super::worker::EngineOutcome;
use crate::format_bytes;
use quarry_core::error::{QuarryError, Result};

/// Everything a benchmark measured, as written to the JSON file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub quarry_version: String,
    /// Short commit of the quarry checkout, `+dirty` with local changes.
    pub git_commit: Option<String>,
    /// `YYYY-MM-DD`, UTC: the date in the file names.
    pub date: String,
    pub started_at: String,
    pub command: String,
    pub scale_factor: f64,
    pub data_dir: String,
    pub runs: usize,
    /// Threads given to every engine; `None`: each engine's default (all cores).
    pub threads: Option<usize>,
    pub memory_limit: Option<String>,
    pub timeout_seconds: f64,
    /// The load averages when the last engine finished (the start is in `machine`).
    pub load_average_at_end: Option<[f64; 3]>,
    pub machine: Machine,
    /// What a time is.
    pub timing: String,
    pub engines: Vec<EngineReport>,
    pub queries: Vec<QueryReport>,
    pub summary: Summary,
}

/// One engine: how it ran and what it used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineReport {
    pub engine: String,
    /// `ran` or `unavailable`.
    pub status: String,
    /// Why it is unavailable.
    pub error: Option<String>,
    pub version: Option<String>,
    pub settings: BTreeMap<String, String>,
    pub notes: Vec<String>,
    /// Peak RSS of its process once set up, before the first query.
    pub baseline_rss_bytes: Option<u64>,
    /// Peak RSS of its process(es) over the whole run.
    pub peak_rss_bytes: Option<u64>,
    /// Processes started again after one died or timed out.
    pub restarts: usize,
    pub answered: usize,
    pub failed: usize,
    /// Answers that differ from another engine's.
    pub differed: usize,
}

/// One query: each engine's times and answer status, the comparisons.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryReport {
    pub query: usize,
    pub results: Vec<EngineResult>,
    /// Every pair of engines that answered.
    pub comparisons: Vec<Comparison>,
    /// quarry's median over each peer's (below 1: quarry is faster).
    pub quarry_ratios: Vec<Ratio>,
    /// `agree`, `polars differs`, `quarry failed`, …
    pub verdict: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineResult {
    pub engine: String,
    /// `ok`, `failed` or `unavailable`.
    pub status: String,
    pub median_seconds: Option<f64>,
    pub min_seconds: Option<f64>,
    pub max_seconds: Option<f64>,
    /// Every run, in order (the first run included).
    pub seconds: Vec<f64>,
    pub rows: Option<usize>,
    pub column_types: Vec<String>,
    pub error: Option<String>,
    /// Whether the answer agrees with every other engine that answered;
    /// `None` when there is none to compare with.
    pub agrees: Option<bool>,
    /// quarry's peak reserved memory and spilling in the first run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<super::worker::MemoryFigures>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub engines: [String; 2],
    pub agree: bool,
    pub first_difference: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ratio {
    pub peer: String,
    pub ratio: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Queries that every engine that ran answered: the geometric means and
    /// totals are over these, so that they compare.
    pub common_queries: Vec<usize>,
    pub engines: Vec<EngineSummary>,
    /// quarry's geometric mean over each peer's.
    pub quarry_ratios: Vec<Ratio>,
    /// True when no engine is unavailable, none failed a query and all
    /// answers agree.
    pub ok: bool,
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineSummary {
    pub engine: String,
    pub geomean_seconds: Option<f64>,
    pub total_seconds: Option<f64>,
    pub peak_rss_bytes: Option<u64>,
}

/// What the report is about, known before the engines run.
#[derive(Debug, Clone)]
pub struct Meta {
    pub quarry_version: String,
    pub git_commit: Option<String>,
    pub date: String,
    pub started_at: String,
    pub command: String,
    pub scale_factor: f64,
    pub data_dir: String,
    pub runs: usize,
    pub threads: Option<usize>,
    pub memory_limit: Option<String>,
    pub timeout_seconds: f64,
    pub load_average_at_end: Option<[f64; 3]>,
    pub machine: Machine,
}

/// The engine's outcome, or why it could not run.
pub type EngineRun = (String, std::result::Result<EngineOutcome, String>);

pub const TIMING: &str = "wall time of one run of a query: from handing the SQL text to the \
engine until the whole result is materialised in the engine's process, in its own format \
(quarry: Session::sql, Arrow batches; DuckDB: execute, a materialised result set; Polars: \
SQLContext.execute + collect, a DataFrame); turning the answer into text for the check is not \
timed; each engine, in its own process, reads the Parquet files itself on every run; the \
median of all runs, the first included";

pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

pub fn geomean(values: &[f64]) -> Option<f64> {
    if values.is_empty() || values.iter().any(|v| *v <= 0.0 || !v.is_finite()) {
        return None;
    }
    Some((values.iter().map(|v| v.ln()).sum::<f64>() / values.len() as f64).exp())
}

fn one_line(text: &str, max: usize) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= max {
        line
    } else {
        let cut: String = line.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

/// Builds the report from the engines' outcomes, in the order given.
pub fn build(
    meta: Meta,
    queries: &[usize],
    runs: Vec<EngineRun>,
    notes: &[(String, String)],
) -> Report {
    let mut engines = Vec::new();
    for (name, run) in &runs {
        let mut report = EngineReport {
            engine: name.clone(),
            status: "ran".into(),
            error: None,
            version: None,
            settings: BTreeMap::new(),
            notes: notes
                .iter()
                .filter(|(e, _)| e == name)
                .map(|(_, n)| n.clone())
                .collect(),
            baseline_rss_bytes: None,
            peak_rss_bytes: None,
            restarts: 0,
            answered: 0,
            failed: 0,
            differed: 0,
        };
        match run {
            Err(why) => {
                report.status = "unavailable".into();
                report.error = Some(why.clone());
            }
            Ok(out) => {
                if let Some(why) = &out.fatal {
                    report.status = "unavailable".into();
                    report.error = Some(why.clone());
                }
                report.version = out.version.clone();
                report.settings = out.settings.clone();
                report.notes.extend(out.notes.iter().cloned());
                report.baseline_rss_bytes = out.baseline_rss_bytes;
                report.peak_rss_bytes = out.peak_rss_bytes;
                report.restarts = out.restarts;
            }
        }
        engines.push(report);
    }

    let mut query_reports = Vec::new();
    for &q in queries {
        let mut results = Vec::new();
        let mut answers = Vec::new();
        for (name, run) in &runs {
            let outcome = match run {
                Ok(out) if out.fatal.is_none() => out.queries.get(&q),
                _ => None,
            };
            let unavailable = !matches!(run, Ok(out) if out.fatal.is_none());
            let mut r = EngineResult {
                engine: name.clone(),
                status: "unavailable".into(),
                median_seconds: None,
                min_seconds: None,
                max_seconds: None,
                seconds: vec![],
                rows: None,
                column_types: vec![],
                error: None,
                agrees: None,
                memory: None,
            };
            match outcome {
                _ if unavailable => {}
                None => {
                    r.status = "failed".into();
                    r.error = Some("not run".into());
                }
                Some(o) => {
                    r.seconds = o.seconds.clone();
                    r.memory = o.memory.clone();
                    match (&o.error, &o.answer) {
                        (None, Some(a)) => {
                            r.status = "ok".into();
                            r.median_seconds = median(&o.seconds);
                            r.min_seconds = o.seconds.iter().copied().reduce(f64::min);
                            r.max_seconds = o.seconds.iter().copied().reduce(f64::max);
                            r.rows = Some(a.rows.len());
                            r.column_types = a.types.clone();
                            answers.push((name.clone(), a));
                        }
                        (e, _) => {
                            r.status = "failed".into();
                            r.error = Some(e.clone().unwrap_or_else(|| "no answer".into()));
                        }
                    }
                }
            }
            results.push(r);
        }
        let mut comparisons = Vec::new();
        for i in 0..answers.len() {
            for j in i + 1..answers.len() {
                let (na, a) = &answers[i];
                let (nb, b) = &answers[j];
                let diff = compare_answers(na, a, nb, b).err();
                comparisons.push(Comparison {
                    engines: [na.clone(), nb.clone()],
                    agree: diff.is_none(),
                    first_difference: diff,
                });
            }
        }
        let odd = odd_one_out(&results, &comparisons);
        for r in &mut results {
            let mine: Vec<&Comparison> = comparisons
                .iter()
                .filter(|c| c.engines.contains(&r.engine))
                .collect();
            if r.status == "ok" && !mine.is_empty() {
                // With one engine against all others, the others agree.
                let with_all = mine.iter().all(|c| c.agree);
                r.agrees = Some(with_all || odd.as_ref().is_some_and(|o| *o != r.engine));
            }
        }
        let quarry_median = results
            .iter()
            .find(|r| r.engine == "quarry")
            .and_then(|r| r.median_seconds);
        let quarry_ratios = if runs.iter().any(|(n, _)| n == "quarry") {
            results
                .iter()
                .filter(|r| r.engine != "quarry")
                .map(|r| Ratio {
                    peer: r.engine.clone(),
                    ratio: quarry_median
                        .zip(r.median_seconds)
                        .filter(|(_, p)| *p > 0.0)
                        .map(|(q, p)| q / p),
                })
                .collect()
        } else {
            vec![]
        };
        let verdict = verdict(&results, &comparisons);
        query_reports.push(QueryReport {
            query: q,
            results,
            comparisons,
            quarry_ratios,
            verdict,
        });
    }

    for e in &mut engines {
        for q in &query_reports {
            if let Some(r) = q.results.iter().find(|r| r.engine == e.engine) {
                match r.status.as_str() {
                    "ok" => e.answered += 1,
                    "failed" => e.failed += 1,
                    _ => {}
                }
                if r.agrees == Some(false) {
                    e.differed += 1;
                }
            }
        }
    }
    let summary = summarize(&engines, &query_reports);
    Report {
        quarry_version: meta.quarry_version,
        git_commit: meta.git_commit,
        date: meta.date,
        started_at: meta.started_at,
        command: meta.command,
        scale_factor: meta.scale_factor,
        data_dir: meta.data_dir,
        runs: meta.runs,
        threads: meta.threads,
        memory_limit: meta.memory_limit,
        timeout_seconds: meta.timeout_seconds,
        load_average_at_end: meta.load_average_at_end,
        machine: meta.machine,
        timing: TIMING.into(),
        engines,
        queries: query_reports,
        summary,
    }
}

/// The one engine whose answer differs from all the others when those (at
/// least two) agree among themselves.
fn odd_one_out(results: &[EngineResult], comparisons: &[Comparison]) -> Option<String> {
    let ok: Vec<&str> = results
        .iter()
        .filter(|r| r.status == "ok")
        .map(|r| r.engine.as_str())
        .collect();
    if ok.len() < 3 || comparisons.iter().all(|c| c.agree) {
        return None;
    }
    let odd: Vec<&str> = ok
        .iter()
        .copied()
        .filter(|e| {
            comparisons
                .iter()
                .filter(|c| c.engines.iter().any(|n| n == e))
                .all(|c| !c.agree)
                && comparisons
                    .iter()
                    .filter(|c| !c.engines.iter().any(|n| n == e))
                    .all(|c| c.agree)
        })
        .collect();
    (odd.len() == 1).then(|| odd[0].to_string())
}

/// One phrase per query: `agree`, `polars differs`, `quarry ≠ duckdb`,
/// `quarry failed`, …; `-` when there is nothing to compare.
fn verdict(results: &[EngineResult], comparisons: &[Comparison]) -> String {
    let ok = results.iter().filter(|r| r.status == "ok").count();
    let mut parts = Vec::new();
    if comparisons.iter().all(|c| c.agree) {
        if ok >= 2 {
            parts.push("agree".to_string());
        }
    } else {
        if let Some(odd) = odd_one_out(results, comparisons) {
            parts.push(format!("{odd} differs"));
        } else {
            parts.extend(
                comparisons
                    .iter()
                    .filter(|c| !c.agree)
                    .map(|c| format!("{} ≠ {}", c.engines[0], c.engines[1])),
            );
        }
    }
    parts.extend(
        results
            .iter()
            .filter(|r| r.status == "failed")
            .map(|r| format!("{} failed", r.engine)),
    );
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(", ")
    }
}

fn summarize(engines: &[EngineReport], queries: &[QueryReport]) -> Summary {
    let ran: Vec<&str> = engines
        .iter()
        .filter(|e| e.status == "ran")
        .map(|e| e.engine.as_str())
        .collect();
    let common: Vec<usize> = queries
        .iter()
        .filter(|q| {
            !ran.is_empty()
                && q.results
                    .iter()
                    .filter(|r| ran.contains(&r.engine.as_str()))
                    .all(|r| r.median_seconds.is_some())
        })
        .map(|q| q.query)
        .collect();
    let medians = |engine: &str| -> Vec<f64> {
        queries
            .iter()
            .filter(|q| common.contains(&q.query))
            .filter_map(|q| q.results.iter().find(|r| r.engine == engine))
            .filter_map(|r| r.median_seconds)
            .collect()
    };
    let summaries: Vec<EngineSummary> = engines
        .iter()
        .map(|e| {
            let m = if e.status == "ran" {
                medians(&e.engine)
            } else {
                vec![]
            };
            EngineSummary {
                engine: e.engine.clone(),
                geomean_seconds: geomean(&m),
                total_seconds: (!m.is_empty()).then(|| m.iter().sum()),
                peak_rss_bytes: e.peak_rss_bytes,
            }
        })
        .collect();
    let quarry_geo = summaries
        .iter()
        .find(|s| s.engine == "quarry")
        .and_then(|s| s.geomean_seconds);
    let quarry_ratios = if engines.iter().any(|e| e.engine == "quarry") {
        summaries
            .iter()
            .filter(|s| s.engine != "quarry")
            .map(|s| Ratio {
                peer: s.engine.clone(),
                ratio: quarry_geo
                    .zip(s.geomean_seconds)
                    .filter(|(_, p)| *p > 0.0)
                    .map(|(q, p)| q / p),
            })
            .collect()
    } else {
        vec![]
    };
    let mut problems = Vec::new();
    for e in engines.iter().filter(|e| e.status != "ran") {
        problems.push(format!(
            "{} unavailable: {}",
            e.engine,
            one_line(e.error.as_deref().unwrap_or("?"), 300)
        ));
    }
    for q in queries {
        for r in &q.results {
            if r.status == "failed" {
                problems.push(format!(
                    "Q{}: {} failed: {}",
                    q.query,
                    r.engine,
                    one_line(r.error.as_deref().unwrap_or("?"), 300)
                ));
            }
        }
        for c in q.comparisons.iter().filter(|c| !c.agree) {
            problems.push(format!(
                "Q{}: {} and {} differ: {}",
                q.query,
                c.engines[0],
                c.engines[1],
                one_line(c.first_difference.as_deref().unwrap_or("?"), 300)
            ));
        }
    }
    Summary {
        common_queries: common,
        engines: summaries,
        quarry_ratios,
        ok: problems.is_empty(),
        problems,
    }
}

fn seconds(v: Option<f64>) -> String {
    match v {
        Some(s) => format!("{s:.3}"),
        None => "-".into(),
    }
}

fn ratio(v: Option<f64>) -> String {
    match v {
        Some(r) => format!("{r:.2}×"),
        None => "-".into(),
    }
}

fn pretty_engine(name: &str) -> &str {
    match name {
        "duckdb" => "DuckDB",
        "polars" => "Polars",
        other => other,
    }
}

/// The first of the settings `keys` the engine reported, or `-`.
fn setting(engine: &EngineReport, keys: &[&str]) -> String {
    keys.iter()
        .find_map(|k| engine.settings.get(*k))
        .cloned()
        .unwrap_or_else(|| "-".into())
}

fn table() -> comfy_table::Table {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(comfy_table::ContentArrangement::Disabled);
    t
}

fn right(t: &mut comfy_table::Table, from: usize, to: usize) {
    for i in from..to {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(comfy_table::CellAlignment::Right);
        }
    }
}

/// The report as text for the terminal: the per-query table, the per-engine
/// table, and the problems.
pub fn render_table(report: &Report) -> String {
    let mut out = String::new();
    let threads = match report.threads {
        Some(t) => format!("{t} threads"),
        None => format!(
            "threads: engine default (all {} cores)",
            report.machine.cores
        ),
    };
    let load = match (report.machine.load_average, report.load_average_at_end) {
        (Some(a), Some(b)) => format!(
            " · load average {:.2} at the start, {:.2} at the end",
            a[0], b[0]
        ),
        (Some(a), None) => format!(" · load average {:.2} at the start", a[0]),
        _ => String::new(),
    };
    let _ = writeln!(
        out,
        "TPC-H SF {} · median of {} run{} (seconds) · {} · {} · {}{load}",
        report.scale_factor,
        report.runs,
        if report.runs == 1 { "" } else { "s" },
        threads,
        report.date,
        report.data_dir
    );
    let names: Vec<&str> = report.engines.iter().map(|e| e.engine.as_str()).collect();
    let peers: Vec<&str> = report.queries.first().map_or(vec![], |q| {
        q.quarry_ratios.iter().map(|r| r.peer.as_str()).collect()
    });
    let mut t = table();
    let mut header = vec!["query".to_string()];
    header.extend(names.iter().map(|n| n.to_string()));
    header.extend(peers.iter().map(|p| format!("quarry/{p}")));
    header.push("answers".into());
    t.set_header(header);
    for q in &report.queries {
        let mut row = vec![format!("Q{:02}", q.query)];
        for r in &q.results {
            row.push(match r.status.as_str() {
                "ok" => seconds(r.median_seconds),
                s => s.to_string(),
            });
        }
        row.extend(q.quarry_ratios.iter().map(|r| ratio(r.ratio)));
        row.push(q.verdict.clone());
        t.add_row(row);
    }
    let n_common = report.summary.common_queries.len();
    let mut geo = vec![format!("geomean ({n_common})")];
    let mut total = vec![format!("total ({n_common})")];
    for s in &report.summary.engines {
        geo.push(seconds(s.geomean_seconds));
        total.push(seconds(s.total_seconds));
    }
    geo.extend(report.summary.quarry_ratios.iter().map(|r| ratio(r.ratio)));
    total.extend(peers.iter().map(|_| String::new()));
    geo.push(String::new());
    total.push(String::new());
    t.add_row(geo);
    t.add_row(total);
    right(&mut t, 1, 1 + names.len() + peers.len());
    let _ = writeln!(out, "{t}");
    if n_common < report.queries.len() {
        let _ = writeln!(
            out,
            "geomean and total: over the {n_common} queries that every engine answered"
        );
    }

    let mut e = table();
    e.set_header(vec![
        "engine",
        "version",
        "answered",
        "agree",
        "peak RSS",
        "RSS at start",
        "threads",
        "memory limit",
        "notes",
    ]);
    for engine in &report.engines {
        let mut notes = engine.notes.clone();
        if let Some(err) = &engine.error {
            notes.insert(0, format!("unavailable: {}", one_line(err, 120)));
        }
        if engine.restarts > 0 {
            notes.push(format!(
                "{} restart(s) after a crash or timeout",
                engine.restarts
            ));
        }
        let compared = engine.answered;
        e.add_row(vec![
            engine.engine.clone(),
            engine.version.clone().unwrap_or_else(|| "-".into()),
            format!("{}/{}", engine.answered, report.queries.len()),
            if engine.status == "ran" {
                format!("{}/{}", compared - engine.differed.min(compared), compared)
            } else {
                "-".into()
            },
            engine
                .peak_rss_bytes
                .map(format_bytes)
                .unwrap_or_else(|| "-".into()),
            engine
                .baseline_rss_bytes
                .map(format_bytes)
                .unwrap_or_else(|| "-".into()),
            setting(engine, &["threads", "thread_pool_size"]),
            if engine.engine == "polars" && engine.status == "ran" {
                "none".into()
            } else {
                setting(engine, &["memory_limit"])
            },
            notes.join("; "),
        ]);
    }
    right(&mut e, 2, 6);
    let _ = writeln!(out, "{e}");
    let _ = writeln!(
        out,
        "quarry/peer: quarry's time over the peer's (below 1: quarry is faster). \
         answers: each engine's answer against the others' (decimals exact, floats to 1e-9)."
    );
    if !report.summary.problems.is_empty() {
        let _ = writeln!(out, "problems:");
        for p in &report.summary.problems {
            let _ = writeln!(out, "  - {p}");
        }
    }
    out
}

/// The file names of a report: `<date>-<commit>-sf<N>.json` and `.svg`
/// (`<date>-sf<N>` outside a repository), so that runs of the same day on
/// different commits keep their own files.
pub fn file_stem(report: &Report) -> String {
    match &report.git_commit {
        Some(commit) => format!("{}-{commit}-sf{}", report.date, report.scale_factor),
        None => format!("{}-sf{}", report.date, report.scale_factor),
    }
}

/// Writes `<dir>/<file_stem>.json` and `.svg`: each to a temporary file
/// first, both renamed into place only once both are complete.
pub fn write_reports(report: &Report, dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let io = |what: &str, p: &Path, e: std::io::Error| {
        QuarryError::Io(format!("{what} {}: {e}", p.display()))
    };
    std::fs::create_dir_all(dir).map_err(|e| io("cannot create directory", dir, e))?;
    let json = serde_json::to_string_pretty(report)
        .map_err(|e| QuarryError::exec(format!("cannot encode the report: {e}")))?
        + "\n";
    let svg = render_svg(report)?;
    let stem = file_stem(report);
    let files = [
        (dir.join(format!("{stem}.json")), json),
        (dir.join(format!("{stem}.svg")), svg),
    ];
    let mut written = Vec::new();
    for (path, text) in &files {
        let tmp = dir.join(format!(
            ".{}.tmp-{}",
            path.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default(),
            std::process::id()
        ));
        if let Err(e) = std::fs::write(&tmp, text) {
            let _ = std::fs::remove_file(&tmp);
            for t in &written {
                let _ = std::fs::remove_file(t);
            }
            return Err(io("cannot write", &tmp, e));
        }
        written.push(tmp);
    }
    for ((path, _), tmp) in files.iter().zip(&written) {
        std::fs::rename(tmp, path).map_err(|e| io("cannot rename to", path, e))?;
    }
    let [(json_path, _), (svg_path, _)] = files;
    Ok((json_path, svg_path))
}

/// The colour of an engine in the chart (Okabe–Ito, safe for colour blindness).
pub fn colour(engine: &str) -> &'static str {
    match engine {
        "quarry" => "#d55e00",
        "quarry-cluster" => "#e69f00",
        "duckdb" => "#0072b2",
        "polars" => "#009e73",
        _ => "#777777",
    }
}

/// Two or three significant digits: `0.48`, `12.3`, `0.052`.
fn short_seconds(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.1}")
    } else if v >= 0.1 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn fmt_tick(v: f64) -> String {
    if v >= 1.0 {
        format!("{v:.0} s")
    } else {
        let digits = (-v.log10()).ceil().max(0.0) as usize;
        format!("{v:.digits$} s")
    }
}

/// The bar chart, drawn with `plotters` into an SVG: per query a group of
/// bars, one per engine (median time, log scale), and a last group with
/// the geometric means (outlined). A query an engine did not answer gets no
/// bar but a cross; an answer that differs from another engine's gets a `≠`
/// above its bar.
pub fn render_svg(report: &Report) -> Result<String> {
    let mut svg = String::new();
    {
        let n_e = report.engines.len().max(1);
        let n_q = report.queries.len();
        // At least wide enough for the title; a few queries get wider bars.
        let width = ((72 + (n_q + 1) * (n_e * 11 + 12) + 40) as u32).max(760);
        let root = SVGBackend::with_string(&mut svg, (width, CHART_HEIGHT)).into_drawing_area();
        draw_chart(&root, report)
            .map_err(|e| QuarryError::exec(format!("cannot draw the benchmark chart: {e}")))?;
        root.present()
            .map_err(|e| QuarryError::exec(format!("cannot draw the benchmark chart: {e}")))?;
    }
    Ok(svg)
}

/// Pixels: the chart's height, and what lies above its plot (title,
/// subtitle, legend) and left of it (tick labels and the axis title).
const CHART_HEIGHT: u32 = 458;
const CHART_TOP: u32 = 92;
const CHART_LEFT: u32 = 72;

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;
type DrawResult = std::result::Result<(), DrawingAreaErrorKind<std::io::Error>>;

fn hex(colour: &str) -> RGBColor {
    let v = u32::from_str_radix(colour.trim_start_matches('#'), 16).unwrap_or(0x777777);
    RGBColor((v >> 16) as u8, (v >> 8) as u8, v as u8)
}

fn draw_chart(root: &Area<'_>, report: &Report) -> DrawResult {
    let grey = hex("#444444");
    // plotters' SVG backend writes a font size of size / 1.24
    let font = |size: f64| ("sans-serif", size * 1.24).into_font();
    let n_e = report.engines.len().max(1);
    let n_q = report.queries.len();

    let mut values: Vec<f64> = report
        .queries
        .iter()
        .flat_map(|q| q.results.iter().filter_map(|r| r.median_seconds))
        .chain(
            report
                .summary
                .engines
                .iter()
                .filter_map(|s| s.geomean_seconds),
        )
        .filter(|v| *v > 0.0 && v.is_finite())
        .collect();
    values.sort_by(f64::total_cmp);
    let (mut lo, mut hi) = match (values.first(), values.last()) {
        (Some(a), Some(b)) => (a.log10().floor(), b.log10().ceil()),
        _ => (-2.0, 1.0),
    };
    if hi <= lo {
        hi = lo + 1.0;
    }
    if hi - lo < 2.0 {
        lo = hi - 2.0;
    }
    let (lo, hi) = (10f64.powf(lo), 10f64.powf(hi));

    root.fill(&WHITE)?;
    let left = CHART_LEFT as i32;
    root.draw(&Text::new(
        format!(
            "TPC-H SF {}: median time per query (log scale, lower is better)",
            report.scale_factor
        ),
        (left, 10),
        font(16.0).style(FontStyle::Bold),
    ))?;
    let threads = match report.threads {
        Some(t) => format!("{t} threads"),
        None => "all cores".into(),
    };
    let commit = report
        .git_commit
        .as_deref()
        .map(|c| format!(" ({c})"))
        .unwrap_or_default();
    let subtitle = format!(
        "{} · {} run{} per query · {} · {} cores{} · quarry {}{}{}",
        report.date,
        report.runs,
        if report.runs == 1 { "" } else { "s" },
        threads,
        report.machine.cores,
        report
            .machine
            .cpu
            .as_deref()
            .map(|c| format!(", {c}"))
            .unwrap_or_default(),
        report.quarry_version,
        commit,
        report
            .machine
            .load_average
            .filter(|l| l[0] >= 0.5)
            .map(|l| format!(" · load average {:.1} at the start", l[0]))
            .unwrap_or_default()
    );
    root.draw(&Text::new(subtitle, (left, 33), font(12.0).color(&grey)))?;
    // legend
    let mut lx = left;
    for e in &report.engines {
        let geo = report
            .summary
            .engines
            .iter()
            .find(|s| s.engine == e.engine)
            .and_then(|s| s.geomean_seconds)
            .map(|g| format!(" (geomean {} s)", short_seconds(g)))
            .unwrap_or_default();
        let label = match (&e.version, e.status.as_str()) {
            (_, "unavailable") => format!("{} (unavailable)", pretty_engine(&e.engine)),
            (Some(v), _) => format!("{} {v}{geo}", pretty_engine(&e.engine)),
            (None, _) => format!("{}{geo}", pretty_engine(&e.engine)),
        };
        root.draw(&Rectangle::new(
            [(lx, 58), (lx + 12, 70)],
            hex(colour(&e.engine)).filled(),
        ))?;
        root.draw(&Text::new(label.clone(), (lx + 17, 58), font(12.0)))?;
        lx += 30 + 7 * label.chars().count() as i32;
    }
    root.draw(&Text::new(
        "× no answer   ≠ answer differs",
        (lx, 58),
        font(12.0).color(&grey),
    ))?;

    // the plot: a group of bars per query, then the geometric means
    let mut chart = ChartBuilder::on(root)
        .margin_top(CHART_TOP)
        .margin_right(40)
        .margin_bottom(20)
        .y_label_area_size(CHART_LEFT)
        .x_label_area_size(46)
        .build_cartesian_2d(0f64..(n_q + 1) as f64, (lo..hi).log_scale())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_label_formatter(&|v| fmt_tick(*v))
        .y_desc("median time per query (seconds, log scale)")
        .x_desc("TPC-H query")
        .label_style(font(12.0))
        .axis_desc_style(font(12.0))
        .bold_line_style(hex("#bbbbbb"))
        .light_line_style(hex("#eeeeee"))
        .axis_style(hex("#333333"))
        .draw()?;
    // bars take 80 % of a group, at most 28 pixels each
    let plot = chart.plotting_area();
    let (plot_w, _) = plot.dim_in_pixel();
    let group_px = plot_w as f64 / (n_q + 1) as f64;
    let bar = (0.8 / n_e as f64).min(28.0 / group_px);
    let bar_x =
        |group: usize, j: usize| group as f64 + (1.0 - bar * n_e as f64) / 2.0 + j as f64 * bar;
    let label_at = |group: usize| chart.backend_coord(&(group as f64 + 0.5, lo));
    let mark = |x: f64, y: f64, text: &str, style: TextStyle<'static>| {
        let (px, py) = chart.backend_coord(&(x, y));
        Text::new(
            text.to_string(),
            (px, py),
            style.pos(Pos::new(HPos::Center, VPos::Bottom)),
        )
    };
    for (i, q) in report.queries.iter().enumerate() {
        for (j, r) in q.results.iter().enumerate() {
            let x = bar_x(i, j);
            let c = hex(colour(&r.engine));
            match r.median_seconds {
                Some(v) if v > 0.0 => {
                    let v = v.max(lo);
                    plot.draw(&Rectangle::new([(x, lo), (x + bar * 0.95, v)], c.filled()))?;
                    if r.agrees == Some(false) {
                        let style = font(12.0).style(FontStyle::Bold).color(&hex("#cc0000"));
                        root.draw(&mark(x + bar / 2.0, v, "≠", style))?;
                    }
                }
                _ => root.draw(&mark(x + bar / 2.0, lo, "×", font(12.0).color(&c)))?,
            }
        }
        let (px, py) = label_at(i);
        root.draw(&Text::new(
            format!("Q{}", q.query),
            (px, py + 6),
            font(12.0)
                .color(&BLACK)
                .pos(Pos::new(HPos::Center, VPos::Top)),
        ))?;
    }
    for (j, e) in report.summary.engines.iter().enumerate() {
        if let Some(v) = e.geomean_seconds.filter(|v| *v > 0.0) {
            let x = bar_x(n_q, j);
            let corners = [(x, lo), (x + bar * 0.95, v.max(lo))];
            plot.draw(&Rectangle::new(corners, hex(colour(&e.engine)).filled()))?;
            plot.draw(&Rectangle::new(corners, hex("#222222").stroke_width(1)))?;
        }
    }
    let (px, py) = label_at(n_q);
    root.draw(&Text::new(
        "geomean",
        (px, py + 6),
        font(12.0)
            .style(FontStyle::Bold)
            .color(&BLACK)
            .pos(Pos::new(HPos::Center, VPos::Top)),
    ))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::compare::WireAnswer;
    use crate::bench::worker::QueryOutcome;

    fn answer(value: &str) -> WireAnswer {
        WireAnswer {
            columns: vec!["revenue".into(), "avg".into()],
            types: vec!["Decimal128(38, 4)".into(), "Float64".into()],
            kinds: vec!["decimal".into(), "float".into()],
            rows: vec![vec![
                Some(value.into()),
                Some("0.049985295838397614".into()),
            ]],
        }
    }

    /// A query and its run times and value, or `None` for an error.
    type Canned<'a> = (usize, Option<(&'a [f64], &'a str)>);

    fn outcome(results: &[Canned<'_>]) -> EngineOutcome {
        let mut out = EngineOutcome {
            version: Some("1.0".into()),
            peak_rss_bytes: Some(300 << 20),
            baseline_rss_bytes: Some(40 << 20),
            ..Default::default()
        };
        for (q, r) in results {
            out.queries.insert(
                *q,
                match r {
                    Some((secs, v)) => QueryOutcome {
                        seconds: secs.to_vec(),
                        answer: Some(answer(v)),
                        error: None,
                        memory: None,
                    },
                    None => QueryOutcome {
                        seconds: vec![],
                        answer: None,
                        error: Some("Binder Error: <nope> & \"more\"".into()),
                        memory: None,
                    },
                },
            );
        }
        out
    }

    pub(crate) fn meta() -> Meta {
        Meta {
            quarry_version: "0.1.0".into(),
            git_commit: Some("abc1234".into()),
            date: "2026-11-25".into(),
            started_at: "2026-11-25T18:00:00Z".into(),
            command: "quarry tpch bench --sf 1".into(),
            scale_factor: 1.0,
            data_dir: "data/tpch-sf1".into(),
            runs: 3,
            threads: None,
            memory_limit: None,
            timeout_seconds: 900.0,
            load_average_at_end: None,
            machine: Machine {
                cores: 2,
                memory_bytes: Some(24 << 30),
                cpu: Some("Test CPU".into()),
                os: "linux".into(),
                arch: "x86_64".into(),
                load_average: Some([0.5, 0.25, 0.1]),
            },
        }
    }

    /// quarry answers Q1, Q6, Q8; DuckDB the same (Q8 differs); Polars
    /// fails Q6.
    fn sample() -> Report {
        let quarry = outcome(&[
            (1, Some((&[1.0, 0.5, 0.6], "123141078.2283"))),
            (6, Some((&[0.2, 0.2, 0.4], "5.00"))),
            (8, Some((&[0.3, 0.3, 0.3], "1.5"))),
        ]);
        let duckdb = outcome(&[
            (1, Some((&[0.2, 0.25, 0.3], "123141078.22830"))),
            (6, Some((&[0.1, 0.1, 0.1], "5"))),
            (8, Some((&[0.1, 0.1, 0.1], "1.6"))),
        ]);
        let polars = outcome(&[
            (1, Some((&[0.3, 0.3, 0.3], "123141078.2283"))),
            (6, None),
            (8, Some((&[0.15, 0.15, 0.15], "1.5"))),
        ]);
        build(
            meta(),
            &[1, 6, 8],
            vec![
                ("quarry".into(), Ok(quarry)),
                ("duckdb".into(), Ok(duckdb)),
                ("polars".into(), Ok(polars)),
            ],
            &[("quarry".into(), "a note on quarry".into())],
        )
    }

    #[test]
    fn medians_and_means() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        let g = geomean(&[1.0, 4.0]).unwrap();
        assert!((g - 2.0).abs() < 1e-12);
        assert_eq!(geomean(&[1.0, 0.0]), None);
    }

    #[test]
    fn figures_are_consistent() {
        let r = sample();
        assert_eq!(r.queries.len(), 3);
        let q1 = &r.queries[0];
        assert_eq!(q1.verdict, "agree");
        assert_eq!(q1.results[0].median_seconds, Some(0.6));
        assert_eq!(q1.results[1].median_seconds, Some(0.25));
        let to_duckdb = &q1.quarry_ratios[0];
        assert_eq!(to_duckdb.peer, "duckdb");
        assert!((to_duckdb.ratio.unwrap() - 0.6 / 0.25).abs() < 1e-12);
        assert_eq!(q1.comparisons.len(), 3);

        let q6 = &r.queries[1];
        assert_eq!(q6.verdict, "agree, polars failed");
        assert_eq!(q6.results[2].status, "failed");
        assert!(q6.results[2].error.as_deref().unwrap().contains("Binder"));
        assert_eq!(q6.quarry_ratios[1].ratio, None);

        let q8 = &r.queries[2];
        assert_eq!(q8.verdict, "duckdb differs");
        assert_eq!(q8.results[1].agrees, Some(false));
        // quarry and Polars agree, the odd one out is DuckDB
        assert_eq!(q8.results[0].agrees, Some(true));
        assert_eq!(q8.results[2].agrees, Some(true));
        let diff = q8
            .comparisons
            .iter()
            .find(|c| c.engines == ["quarry".to_string(), "duckdb".to_string()])
            .unwrap();
        assert!(diff
            .first_difference
            .as_deref()
            .unwrap()
            .contains("quarry '1.5', duckdb '1.6'"));

        // geometric means over the queries all three answered: Q1 and Q8
        assert_eq!(r.summary.common_queries, vec![1, 8]);
        let q = &r.summary.engines[0];
        assert!((q.geomean_seconds.unwrap() - (0.6f64 * 0.3).sqrt()).abs() < 1e-12);
        assert!((q.total_seconds.unwrap() - 0.9).abs() < 1e-12);
        let d = &r.summary.engines[1];
        assert!((d.geomean_seconds.unwrap() - (0.25f64 * 0.1).sqrt()).abs() < 1e-12);
        let ratio = r.summary.quarry_ratios[0].ratio.unwrap();
        assert!((ratio - q.geomean_seconds.unwrap() / d.geomean_seconds.unwrap()).abs() < 1e-12);
        assert!(!r.summary.ok);
        assert_eq!(r.summary.problems.len(), 1 + 2, "{:?}", r.summary.problems);

        assert_eq!(r.engines[0].answered, 3);
        assert_eq!(r.engines[2].failed, 1);
        assert_eq!(r.engines[1].differed, 1);
        assert_eq!(r.engines[0].notes, vec!["a note on quarry"]);
    }

    #[test]
    fn unavailable_engines_are_reported() {
        let quarry = outcome(&[(1, Some((&[1.0], "1")))]);
        let r = build(
            meta(),
            &[1],
            vec![
                ("quarry".into(), Ok(quarry)),
                (
                    "duckdb".into(),
                    Err("pip install failed: no network".into()),
                ),
            ],
            &[],
        );
        assert_eq!(r.engines[1].status, "unavailable");
        assert_eq!(r.queries[0].results[1].status, "unavailable");
        assert_eq!(r.queries[0].verdict, "-");
        assert_eq!(r.summary.common_queries, vec![1]);
        assert_eq!(r.summary.engines[1].geomean_seconds, None);
        assert!(r.summary.problems[0].starts_with("duckdb unavailable: pip install failed"));
        let text = render_table(&r);
        assert!(text.contains("unavailable: pip install failed"), "{text}");
    }

    #[test]
    fn the_table_shows_every_figure() {
        let text = render_table(&sample());
        for needle in [
            "quarry/duckdb",
            "quarry/polars",
            "Q01",
            "0.600",
            "2.40×",
            "duckdb differs",
            "polars failed",
            "geomean (2)",
            "total (2)",
            "300.0 MiB",
            "a note on quarry",
            "Q8: quarry and duckdb differ",
        ] {
            assert!(text.contains(needle), "{needle} missing in\n{text}");
        }
    }

    #[test]
    fn json_has_every_figure() {
        let dir = tempfile::tempdir().unwrap();
        let report = sample();
        let (json, svg) = write_reports(&report, &dir.path().join("results")).unwrap();
        assert_eq!(json.file_name().unwrap(), "2026-11-25-abc1234-sf1.json");
        assert_eq!(svg.file_name().unwrap(), "2026-11-25-abc1234-sf1.svg");
        // nothing else left behind
        assert_eq!(
            std::fs::read_dir(dir.path().join("results"))
                .unwrap()
                .count(),
            2
        );
        let text = std::fs::read_to_string(&json).unwrap();
        let back: Report = serde_json::from_str(&text).unwrap();
        assert_eq!(back, report);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        for key in [
            "date",
            "command",
            "scale_factor",
            "runs",
            "threads",
            "machine",
            "timing",
            "engines",
            "queries",
            "summary",
        ] {
            assert!(v.get(key).is_some(), "{key}");
        }
        assert_eq!(
            v["queries"][0]["results"][0]["seconds"]
                .as_array()
                .unwrap()
                .len(),
            3
        );
        assert_eq!(v["engines"][0]["peak_rss_bytes"], 300 << 20);
        assert_eq!(v["machine"]["cores"], 2);
    }

    #[test]
    fn svg_is_well_formed_with_a_bar_per_query_and_engine() {
        let report = sample();
        let svg = render_svg(&report).unwrap();
        let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
        let number =
            |n: &roxmltree::Node, a: &str| -> f64 { n.attribute(a).unwrap().parse().unwrap() };
        // filled rectangles of an engine's colour in the plot (below the
        // legend), left to right: its bars, then its geometric mean
        let bars = |engine: &str| -> Vec<(f64, f64)> {
            let fill = colour(engine).to_uppercase();
            let mut v: Vec<(f64, f64)> = doc
                .descendants()
                .filter(|n| n.has_tag_name("rect") && n.attribute("fill") == Some(fill.as_str()))
                .filter(|n| number(n, "y") > CHART_TOP as f64)
                .map(|n| (number(&n, "x"), number(&n, "height")))
                .collect();
            v.sort_by(|a, b| a.0.total_cmp(&b.0));
            v
        };
        let (quarry, duckdb, polars) = (bars("quarry"), bars("duckdb"), bars("polars"));
        // three queries and a geometric mean; Polars did not answer Q6
        assert_eq!((quarry.len(), duckdb.len(), polars.len()), (4, 4, 3));
        // one legend entry per engine
        let legend = doc
            .descendants()
            .filter(|n| n.has_tag_name("rect") && n.attribute("y") == Some("58"))
            .count();
        assert_eq!(legend, 3);
        // a taller bar for a longer time: Q1 quarry 0.6 s, Polars 0.3 s,
        // DuckDB 0.25 s
        assert!(quarry[0].1 > polars[0].1 && polars[0].1 > duckdb[0].1);
        // the geometric means are outlined, one per engine
        let outlined = doc
            .descendants()
            .filter(|n| n.has_tag_name("rect") && n.attribute("stroke") == Some("#222222"))
            .count();
        assert_eq!(outlined, 3);
        let texts: Vec<&str> = doc
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter_map(|n| n.text())
            .map(str::trim)
            .collect();
        let count = |t: &str| texts.iter().filter(|x| **x == t).count();
        // Polars' Q6 is crossed out; Q8 differs (quarry and Polars say 1.5,
        // DuckDB 1.6)
        assert_eq!(count("×"), 1);
        let differing = report
            .queries
            .iter()
            .flat_map(|q| &q.results)
            .filter(|r| r.agrees == Some(false))
            .count();
        assert!(differing > 0);
        assert_eq!(count("≠"), differing);
        for label in ["Q1", "Q6", "Q8", "geomean", "TPC-H query"] {
            assert_eq!(count(label), 1, "{label}");
        }
        assert!(texts
            .iter()
            .any(|t| t.starts_with("TPC-H SF 1: median time")));
        assert!(texts
            .iter()
            .any(|t| t.contains("Test CPU") && t.contains("abc1234")));
    }
}
