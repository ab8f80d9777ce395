//! The `quarry` command: an interactive shell, batch scripts, one-shot
//! commands and the `tpch` subcommand. Every query goes through the
//! `Session`, like any other user of the engine.
//!
//! - `args`: the command line
//! - `input`: where a statement ends; cutting scripts into statements
//! - `shell`: the shell's state, dot commands, running a text
//! - `format`: result output (table, CSV, TSV, JSON, NDJSON, Markdown, line)
//! - `report`: error messages with a caret under the offending SQL
//! - `runner`: batch mode
//! - `repl`, `helper`: the interactive shell and its line editor
//! - `progress`: the progress bar of long queries
//! - `trace`: Chrome-trace profiles (`--profile`, `SET profile`)
//! - `graphviz`: `EXPLAIN (FORMAT dot)`
//! - `worker`: `quarry worker run` and `quarry worker serve`

mod args;
pub mod format;
mod graphviz;
mod helper;
mod input;
mod progress;
mod repl;
mod report;
mod runner;
mod shell;
mod trace;
mod worker;

use std::io::{self, IsTerminal};
use std::process::ExitCode;

pub use format::OutputFormat;

use args::{Command, Source};
use quarry_core::{QuarryError, QueryResult, Session, SessionConfig};
use shell::{Options, Shell, DEFAULT_MAXROWS};

/// Entry point of the `quarry` binary.
pub fn main() -> ExitCode {
    let (cli, mut sources) = args::parse();

    if let Some(Command::Tpch { cmd }) = cli.command {
        let printer = format::Printer::new(OutputFormat::Table);
        let print = |result: &QueryResult, elapsed| {
            printer
                .print(&mut io::stdout().lock(), result, elapsed)
                .map_err(|e| QuarryError::Io(e.to_string()))
        };
        return match quarry_tpch::run(cmd, &print) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("Error: {e}");
                ExitCode::FAILURE
            }
        };
    }

    if let Some(Command::Worker { cmd }) = cli.command {
        return match worker::run(cmd) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("Error: {e}");
                ExitCode::FAILURE
            }
        };
    }

    let mut config = SessionConfig::default();
    if let Some(threads) = cli.threads {
        config = config.with_threads(threads);
    }
    let settings = [
        cli.memory_limit
            .as_deref()
            .map(|v| config.set_memory_limit(v)),
        cli.temp_dir
            .as_deref()
            .map(|v| config.set_temp_directory(v)),
        cli.cluster.as_deref().map(|v| config.set("cluster", v)),
    ];
    if let Some(Err(e)) = settings.into_iter().flatten().find(|r| r.is_err()) {
        eprintln!("Error: {e}");
        return ExitCode::from(2);
    }
    let session = match Session::new(config) {
        Ok(session) => session,
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::FAILURE;
        }
    };

    let interactive = sources.is_empty() && io::stdin().is_terminal();
    if sources.is_empty() && !interactive {
        sources.push(Source::Stdin);
    }
    let options = Options {
        format: cli.format,
        bail: !cli.no_bail,
        interactive,
        output: cli.output,
        profile: cli.profile,
        maxrows: cli
            .maxrows
            .map_or(Some(DEFAULT_MAXROWS), |n| (n > 0).then_some(n)),
    };
    let mut shell = match Shell::new(&session, options) {
        Ok(shell) => shell,
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if interactive {
        repl::run(&mut shell)
    } else {
        runner::run_sources(&mut shell, &sources)
    }
}
