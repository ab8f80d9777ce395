//! The command line: flags, the `tpch` subcommand, and the SQL inputs in the
//! order they were given.

use std::path::PathBuf;

use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};

use super::format::OutputFormat;

/// quarry: a SQL query engine for Parquet and CSV files.
///
/// With no SQL given and a terminal on stdin, starts an interactive shell.
/// Otherwise runs the SQL (and dot commands) of -c, -f and SCRIPT in the order
/// given (or all of stdin), prints each result and stops at the first error
/// (exit code 1; --no-bail goes on and still exits with 1).
#[derive(Debug, Parser)]
#[command(name = "quarry", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// Run SQL text (repeatable)
    #[arg(short = 'c', long = "command", value_name = "SQL")]
    pub commands: Vec<String>,

    /// Run a SQL script file, `-` for stdin (repeatable)
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// A SQL script file to run
    #[arg(value_name = "SCRIPT")]
    pub script: Option<PathBuf>,

    /// Worker threads (default: all cores)
    #[arg(long, value_name = "N", value_parser = parse_threads)]
    pub threads: Option<usize>,

    /// Memory budget of a query, e.g. 2GB or 512MiB (default: 75% of RAM)
    #[arg(long, value_name = "SIZE")]
    pub memory_limit: Option<String>,

    /// Directory for spill files (default: the system's temp directory)
    #[arg(long, value_name = "DIR")]
    pub temp_dir: Option<String>,

    /// Run queries on a cluster: local:N (N worker processes here),
    /// quarry://HOST:PORT,… (running `quarry worker serve` processes) or
    /// dask://HOST:PORT (a Dask scheduler)
    #[arg(long, value_name = "CLUSTER")]
    pub cluster: Option<String>,

    /// Output format
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,

    /// Write results to FILE instead of stdout
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Write a Chrome trace of every query to FILE (open it in Perfetto)
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,

    /// Tables on a terminal show at most N rows: head and tail (0: all)
    #[arg(long, value_name = "N")]
    pub maxrows: Option<usize>,

    /// Stop at the first error (the default)
    #[arg(long, overrides_with = "no_bail")]
    pub bail: bool,

    /// Go on after an error (the exit code is still 1)
    #[arg(long, overrides_with = "bail")]
    pub no_bail: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// TPC-H data generation and benchmark
    Tpch {
        #[command(subcommand)]
        cmd: quarry_tpch::TpchCommand,
    },
    /// Run tasks of queries that a driver planned (see --cluster)
    Worker {
        #[command(subcommand)]
        cmd: super::worker::WorkerCommand,
    },
}

/// Where SQL comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Command(String),
    File(PathBuf),
    Stdin,
}

impl Source {
    fn file(path: PathBuf) -> Source {
        if path.as_os_str() == "-" {
            Source::Stdin
        } else {
            Source::File(path)
        }
    }
}

fn parse_threads(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err("expected a whole number of threads, at least 1".into()),
    }
}

/// Parses the process arguments; on bad arguments (or --help) clap prints
/// and exits (code 2 for errors).
pub fn parse() -> (Cli, Vec<Source>) {
    from_matches(Cli::command().get_matches()).unwrap_or_else(|e| e.exit())
}

/// The parsed flags and the SQL inputs in command-line order, so that
/// `-c 'CREATE …' -f q.sql -c 'SELECT …'` runs in the order written.
fn from_matches(matches: ArgMatches) -> Result<(Cli, Vec<Source>), clap::Error> {
    let cli = Cli::from_arg_matches(&matches)?;
    let positions = |id: &str| matches.indices_of(id).into_iter().flatten();
    let mut sources: Vec<(usize, Source)> = positions("commands")
        .zip(cli.commands.iter().cloned().map(Source::Command))
        .chain(positions("files").zip(cli.files.iter().cloned().map(Source::file)))
        .chain(positions("script").zip(cli.script.iter().cloned().map(Source::file)))
        .collect();
    sources.sort_by_key(|(index, _)| *index);
    Ok((cli, sources.into_iter().map(|(_, s)| s).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_from(args: &[&str]) -> Result<(Cli, Vec<Source>), clap::Error> {
        let matches = Cli::command()
            .try_get_matches_from(std::iter::once("quarry").chain(args.iter().copied()))?;
        from_matches(matches)
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sources_keep_command_line_order() {
        let (_, sources) = parse_from(&[
            "-c", "SELECT 1", "-f", "a.sql", "--format", "csv", "-c", "SELECT 2", "b.sql", "-f",
            "-",
        ])
        .expect("valid arguments");
        assert_eq!(
            sources,
            vec![
                Source::Command("SELECT 1".into()),
                Source::File("a.sql".into()),
                Source::Command("SELECT 2".into()),
                Source::File("b.sql".into()),
                Source::Stdin,
            ]
        );
    }

    #[test]
    fn defaults() {
        let (cli, sources) = parse_from(&[]).expect("valid arguments");
        assert!(sources.is_empty());
        assert_eq!(cli.format, OutputFormat::Table);
        assert_eq!(cli.threads, None);
        assert!(cli.command.is_none());
        assert!(!cli.no_bail);
        assert_eq!(cli.output, None);
        assert_eq!(cli.profile, None);
    }

    #[test]
    fn threads_must_be_positive() {
        assert_eq!(
            parse_from(&["--threads", "3"]).expect("valid").0.threads,
            Some(3)
        );
        for bad in ["0", "-1", "two", ""] {
            let err = parse_from(&["--threads", bad]).expect_err(bad);
            assert_eq!(err.exit_code(), 2);
        }
    }

    #[test]
    fn unknown_format_is_refused() {
        assert_eq!(
            parse_from(&["--format", "xml"])
                .expect_err("xml")
                .exit_code(),
            2
        );
        assert_eq!(
            parse_from(&["--format", "json"]).expect("json").0.format,
            OutputFormat::Json
        );
    }

    #[test]
    fn the_last_of_bail_and_no_bail_wins() {
        assert!(parse_from(&["--no-bail"]).expect("valid").0.no_bail);
        assert!(
            !parse_from(&["--no-bail", "--bail"])
                .expect("valid")
                .0
                .no_bail
        );
        assert!(
            parse_from(&["--bail", "--no-bail"])
                .expect("valid")
                .0
                .no_bail
        );
    }

    #[test]
    fn tpch_subcommand() {
        let (cli, sources) = parse_from(&["tpch", "gen", "--sf", "0.01"]).expect("valid");
        assert!(matches!(cli.command, Some(Command::Tpch { .. })));
        assert!(sources.is_empty());
        assert!(parse_from(&["-c", "SELECT 1", "tpch", "gen", "--sf", "1"]).is_err());
    }
}
