//! TPC-H: data generation with `tpchgen-arrow`, the 22 queries, answer
//! checking, and the `quarry tpch` commands.

pub mod answers;
pub mod bench;
pub mod gen;

pub use gen::{default_out_dir, generate, generate_with, GenerateOptions, TableReport, TABLES};

/// Parses a scale factor on the command line: a positive finite number.
fn parse_sf(text: &str) -> std::result::Result<f64, String> {
    let sf: f64 = text.trim().parse().map_err(|_| {
        format!("'{text}' is not a number: the scale factor must be a positive number (e.g. 0.01, 1, 10)")
    })?;
    gen::validate_sf(sf).map_err(|e| e.to_string())?;
    Ok(sf)
}

fn parse_timeout(text: &str) -> std::result::Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(t) if t > 0.0 && t.is_finite() && t < 1e9 => Ok(t),
        _ => Err(format!("'{text}' is not a positive number of seconds")),
    }
}

/// `quarry tpch …` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum TpchCommand {
    /// Generate TPC-H data as Parquet.
    Gen {
        /// Scale factor (e.g. 0.01, 1, 10).
        #[arg(long, value_parser = parse_sf, allow_hyphen_values = true)]
        sf: f64,
        /// Output directory (default: data/tpch-sf<N>).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
        /// Cut each table into K parts, one Parquet row group each (default:
        /// one per 122,880 rows; nation and region are always one part).
        #[arg(long, value_name = "K", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        parts: Option<u64>,
    },
    /// Answer TPC-H queries, generating the data first when it is missing.
    Run {
        /// Scale factor (e.g. 0.01, 1, 10).
        #[arg(long, value_parser = parse_sf, allow_hyphen_values = true)]
        sf: f64,
        /// Data directory (default: data/tpch-sf<N>).
        #[arg(long)]
        data: Option<std::path::PathBuf>,
        /// Query numbers, comma-separated (default: all 22).
        #[arg(long, value_delimiter = ',')]
        queries: Vec<usize>,
        /// Worker threads (default: all cores).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        threads: Option<u64>,
    },
    /// Benchmark quarry, DuckDB and Polars on the same Parquet files: times,
    /// answers checked against each other, peak memory; writes
    /// tpch/results/<date>-<commit>-sf<N>.json and .svg.
    Bench {
        /// Scale factor (e.g. 0.01, 1, 10).
        #[arg(long, value_parser = parse_sf, allow_hyphen_values = true)]
        sf: f64,
        /// Data directory (default: data/tpch-sf<N>), generated when missing or empty.
        #[arg(long, value_name = "DIR")]
        data: Option<std::path::PathBuf>,
        /// Engines, comma-separated, in the order to run: quarry, quarry-cluster
        /// (quarry on --cluster), duckdb, polars (default: quarry, duckdb,
        /// polars, and quarry-cluster after quarry with --cluster).
        #[arg(long, value_enum, value_delimiter = ',', ignore_case = true)]
        engines: Vec<bench::Engine>,
        /// Query numbers, comma-separated (default: all 22).
        #[arg(long, value_delimiter = ',', value_parser = bench::parse_query)]
        queries: Vec<usize>,
        /// Runs of each query per engine; the median is reported.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
        runs: u64,
        /// Threads for every engine (default: each engine's default, all cores).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        threads: Option<u64>,
        /// Memory limit, e.g. 4GB: quarry's and DuckDB's memory_limit (Polars has
        /// none; the report says so). Default: each engine's own.
        #[arg(long, value_name = "SIZE", value_parser = bench::parse_memory_limit)]
        memory_limit: Option<String>,
        /// The cluster of the engine quarry-cluster (`local:N`, `quarry://…`
        /// or `dask://…`, as `--cluster` of quarry itself), which runs beside
        /// local quarry and the peers.
        #[arg(long, value_name = "CLUSTER")]
        cluster: Option<String>,
        /// Directory of the JSON and SVG reports (default: tpch/results).
        #[arg(long, value_name = "DIR")]
        results: Option<std::path::PathBuf>,
        /// Seconds an engine may stay silent during a query before it is stopped
        /// (the query then counts as failed).
        #[arg(long, value_name = "SECONDS", default_value_t = 900.0, value_parser = parse_timeout, allow_hyphen_values = true)]
        timeout: f64,
        /// The peers' Python virtual environment (default: tpch/.venv).
        #[arg(long, value_name = "DIR", hide = true)]
        venv: Option<std::path::PathBuf>,
    },
    /// Print the table of a saved benchmark report (tpch/results/*.json) and
    /// draw its chart again (the .svg beside it).
    Report {
        /// The JSON report.
        json: std::path::PathBuf,
    },
    /// Internal: quarry's side of `tpch bench` (JSON events on stdout).
    #[command(hide = true)]
    BenchWorker {
        #[arg(long)]
        data: std::path::PathBuf,
        #[arg(long, value_delimiter = ',', value_parser = bench::parse_query, required = true)]
        queries: Vec<usize>,
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
        runs: u64,
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        threads: Option<u64>,
        #[arg(long, value_parser = bench::parse_memory_limit)]
        memory_limit: Option<String>,
        #[arg(long)]
        cluster: Option<String>,
    },
}

/// Generates TPC-H data with a progress bar on stderr (when it is a
/// terminal); `say` gets a line per table and a summary.
pub(crate) fn generate_with_bar(
    sf: f64,
    out: &std::path::Path,
    options: &GenerateOptions,
    say: &(dyn Fn(&str) + Sync),
) -> quarry_core::Result<Vec<TableReport>> {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    let bar = ProgressBar::with_draw_target(
        Some(gen::estimated_rows(sf, options)),
        ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = ProgressStyle::with_template(
        "generating [{bar:30}] {percent:>3}%  {human_pos}/{human_len} rows  {elapsed} (ETA {eta})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    let start = std::time::Instant::now();
    let result = gen::generate_with_progress(
        sf,
        out,
        options,
        &|r| {
            let line = format!(
                "  {:<9} {:>12} rows {:>4} row groups {:>10} {:>8.2} s",
                r.table,
                r.rows,
                r.row_groups,
                format_bytes(r.bytes),
                r.elapsed.as_secs_f64()
            );
            bar.suspend(|| say(&line));
        },
        &|rows| bar.inc(rows),
    );
    bar.finish_and_clear();
    let reports = result?;
    let rows: u64 = reports.iter().map(|r| r.rows).sum();
    let bytes: u64 = reports.iter().map(|r| r.bytes).sum();
    say(&format!(
        "done: {} tables, {rows} rows, {} in {:.2} s",
        reports.len(),
        format_bytes(bytes),
        start.elapsed().as_secs_f64()
    ));
    Ok(reports)
}

/// Registers the 8 tables of `dir` (`<table>.parquet`) in `session`.
pub fn register_tables(
    session: &quarry_core::Session,
    dir: &std::path::Path,
) -> quarry_core::Result<()> {
    for table in TABLES {
        let path = dir.join(format!("{table}.parquet"));
        let path = path.to_str().ok_or_else(|| {
            quarry_core::QuarryError::Config(format!("path is not UTF-8: {}", path.display()))
        })?;
        session.register_parquet(table, path)?;
    }
    Ok(())
}

/// Whether `dir` holds all 8 tables.
fn has_all_tables(dir: &std::path::Path) -> bool {
    TABLES
        .iter()
        .all(|t| dir.join(format!("{t}.parquet")).is_file())
}

/// `quarry tpch run`: answers the queries and prints each result and time.
fn run_queries(
    sf: f64,
    data: Option<std::path::PathBuf>,
    queries: Vec<usize>,
    threads: Option<u64>,
    print: PrintResult<'_>,
) -> quarry_core::Result<()> {
    gen::validate_sf(sf)?;
    let queries = if queries.is_empty() {
        (1..=22).collect()
    } else {
        queries
    };
    if let Some(bad) = queries.iter().find(|q| query(**q).is_none()) {
        return Err(quarry_core::QuarryError::Config(format!(
            "no TPC-H query {bad}: queries are numbered 1 to 22"
        )));
    }
    let dir = data.unwrap_or_else(|| default_out_dir(sf));
    if !has_all_tables(&dir) {
        run(
            TpchCommand::Gen {
                sf,
                out: Some(dir.clone()),
                parts: None,
            },
            print,
        )?;
    }
    let mut config = quarry_core::SessionConfig::default();
    if let Some(t) = threads {
        config = config.with_threads(t as usize);
    }
    let session = quarry_core::Session::new(config)?;
    register_tables(&session, &dir)?;
    let mut failed = Vec::new();
    for n in queries {
        let sql = query(n).unwrap_or_default();
        let start = std::time::Instant::now();
        match session.sql(sql) {
            Ok(result) => {
                let elapsed = start.elapsed();
                println!(
                    "Q{n:02}: {} rows in {:.3} s",
                    result.num_rows(),
                    elapsed.as_secs_f64()
                );
                print(&result, elapsed)?;
            }
            Err(e) => {
                println!("Q{n:02}: error: {e}");
                failed.push(n);
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        let list: Vec<String> = failed.iter().map(|n| format!("Q{n}")).collect();
        Err(quarry_core::QuarryError::Execution(format!(
            "{} queries failed: {}",
            failed.len(),
            list.join(", ")
        )))
    }
}

/// Prints a query's result and the time it took (`quarry tpch run`); the
/// CLI passes its table format.
pub type PrintResult<'a> =
    &'a dyn Fn(&quarry_core::QueryResult, std::time::Duration) -> quarry_core::Result<()>;

/// Runs a `quarry tpch …` subcommand; `print` shows the results of `run`.
pub fn run(cmd: TpchCommand, print: PrintResult<'_>) -> quarry_core::Result<()> {
    match cmd {
        TpchCommand::Gen { sf, out, parts } => {
            gen::validate_sf(sf)?;
            let out = out.unwrap_or_else(|| default_out_dir(sf));
            println!("generating TPC-H SF {sf} into {}", out.display());
            let options = GenerateOptions {
                parts: parts.map(|k| usize::try_from(k).unwrap_or(usize::MAX)),
                ..GenerateOptions::default()
            };
            generate_with_bar(sf, &out, &options, &|l| println!("{l}"))?;
            Ok(())
        }
        TpchCommand::Bench {
            sf,
            data,
            engines,
            queries,
            runs,
            threads,
            memory_limit,
            cluster,
            results,
            timeout,
            venv,
        } => bench::run(bench::BenchOptions {
            sf,
            data,
            engines,
            queries,
            runs: usize::try_from(runs).unwrap_or(usize::MAX),
            threads: threads.map(|t| usize::try_from(t).unwrap_or(usize::MAX)),
            memory_limit,
            cluster,
            results,
            timeout: std::time::Duration::from_secs_f64(timeout),
            venv,
        }),
        TpchCommand::Report { json } => bench::show_report(&json),
        TpchCommand::BenchWorker {
            data,
            queries,
            runs,
            threads,
            memory_limit,
            cluster,
        } => bench::worker::quarry_worker(
            &data,
            &queries,
            usize::try_from(runs).unwrap_or(usize::MAX),
            threads.map(|t| usize::try_from(t).unwrap_or(usize::MAX)),
            memory_limit.as_deref(),
            cluster.as_deref(),
        ),
        TpchCommand::Run {
            sf,
            data,
            queries,
            threads,
        } => run_queries(sf, data, queries, threads, print),
    }
}

fn format_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The 22 TPC-H queries (`queries/tpch/qNN.sql`), with the specification's
/// qualification substitution parameters; `QUERIES[0]` is Q1.
pub const QUERIES: [&str; 22] = [
    include_str!("../../../queries/tpch/q01.sql"),
    include_str!("../../../queries/tpch/q02.sql"),
    include_str!("../../../queries/tpch/q03.sql"),
    include_str!("../../../queries/tpch/q04.sql"),
    include_str!("../../../queries/tpch/q05.sql"),
    include_str!("../../../queries/tpch/q06.sql"),
    include_str!("../../../queries/tpch/q07.sql"),
    include_str!("../../../queries/tpch/q08.sql"),
    include_str!("../../../queries/tpch/q09.sql"),
    include_str!("../../../queries/tpch/q10.sql"),
    include_str!("../../../queries/tpch/q11.sql"),
    include_str!("../../../queries/tpch/q12.sql"),
    include_str!("../../../queries/tpch/q13.sql"),
    include_str!("../../../queries/tpch/q14.sql"),
    include_str!("../../../queries/tpch/q15.sql"),
    include_str!("../../../queries/tpch/q16.sql"),
    include_str!("../../../queries/tpch/q17.sql"),
    include_str!("../../../queries/tpch/q18.sql"),
    include_str!("../../../queries/tpch/q19.sql"),
    include_str!("../../../queries/tpch/q20.sql"),
    include_str!("../../../queries/tpch/q21.sql"),
    include_str!("../../../queries/tpch/q22.sql"),
];

/// The SQL text of TPC-H query `n` (1 ..= 22).
pub fn query(n: usize) -> Option<&'static str> {
    n.checked_sub(1).and_then(|i| QUERIES.get(i)).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_single_statements() {
        assert!(query(0).is_none() && query(23).is_none());
        for n in 1..=22 {
            let q = query(n).unwrap().trim_end();
            assert!(q.ends_with(';'), "q{n} must end with ';'");
            assert_eq!(q.matches(';').count(), 1, "q{n} must be one statement");
            assert!(q.to_lowercase().contains("select"), "q{n}");
        }
        assert!(query(1).unwrap().contains("interval '90' day"));
    }

    #[test]
    fn formats_bytes() {
        assert_eq!(format_bytes(12), "12 B");
        assert_eq!(format_bytes(2048), "2.0 KiB");
        assert_eq!(format_bytes(3 * 1024 * 1024 + 1024 * 512), "3.5 MiB");
    }
}
