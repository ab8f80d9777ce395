//! The `quarry` command: an interactive shell, batch scripts, one-shot
//! commands and the `tpch` subcommand. Every query goes through
//! `Session::sql_each`, like any other user of the engine.
//!
//! - `args`: the command line
//! - `input`: where a typed statement ends
//! - `format`: result output (table, CSV, JSON, Markdown)
//! - `report`: error messages with a caret under the offending SQL
//! - `runner`: running SQL text and batch mode
//! - `repl`: the interactive shell

mod args;
pub mod format;
mod input;
mod repl;
mod report;
mod runner;

use std::io::{self, IsTerminal};
use std::process::ExitCode;

pub use format::OutputFormat;

use crate::{Session, SessionConfig};
use args::{Command, Source};
use format::Printer;

/// Entry point of the `quarry` binary.
pub fn main() -> ExitCode {
    let (cli, mut sources) = args::parse();

    if let Some(Command::Tpch { cmd }) = cli.command {
        return match crate::tpch::run(cmd) {
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
    let session = match Session::new(config) {
        Ok(session) => session,
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::FAILURE;
        }
    };

    if sources.is_empty() {
        if io::stdin().is_terminal() {
            return repl::run(&session, cli.format);
        }
        sources.push(Source::Stdin);
    }
    let printer = Printer {
        // Decoration is for people; a pipe gets the bare table.
        footer: io::stdout().is_terminal(),
        ..Printer::new(cli.format)
    };
    runner::run_sources(&session, &sources, &printer)
}
