//! The interactive shell: statements run when a line ends them with `;`,
//! dot commands (`.help`) control the shell, errors are printed and the
//! session goes on.
//!
//! Lines are read one at a time and collected until the statement is
//! complete, so that continuation lines get their own prompt. (rustyline's
//! multi-line Validator would keep the statement in one editable buffer, but
//! rustyline 17 cannot draw a prompt on its continuation lines.) The whole
//! statement becomes one history entry.

use std::io::{self, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::ValueEnum;
use rustyline::error::ReadlineError;
use rustyline::{Config, DefaultEditor};

use super::format::{OutputFormat, Printer};
use super::input::{scan, Input};
use super::report::render_error;
use super::runner::{run_text, RunError};
use crate::Session;

const PROMPT: &str = "quarry> ";
const CONTINUE: &str = "   ...> ";

const HELP: &str = "\
Statements end with ; and may span lines. Ctrl-C drops the statement being typed.
.help                            this text
.tables                          list tables and views
.mode table|csv|json|markdown    output format
.timer on|off                    show the run time of each statement
.quit, .exit, Ctrl-D             leave";

/// Runs the shell until `.quit` or Ctrl-D.
pub fn run(session: &Session, format: OutputFormat) -> ExitCode {
    let mut printer = Printer {
        footer: true,
        ok_for_statements: true,
        ..Printer::new(format)
    };
    let config = Config::builder().auto_add_history(false).build();
    let mut editor = match DefaultEditor::with_config(config) {
        Ok(editor) => editor,
        Err(e) => {
            eprintln!("Error: cannot start the line editor: {e}");
            return ExitCode::FAILURE;
        }
    };
    let history = history_path();
    if let Some(path) = &history {
        // The first run has no history file yet: nothing to report.
        let _ = editor.load_history(path);
    }
    println!(
        "quarry {}. Statements end with ;  Type .help for help.",
        env!("CARGO_PKG_VERSION")
    );

    let mut statement = String::new();
    loop {
        let prompt = if statement.is_empty() {
            PROMPT
        } else {
            CONTINUE
        };
        let line = match editor.readline(prompt) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => {
                statement.clear();
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                eprintln!("Error: {e}");
                break;
            }
        };
        if statement.is_empty() && line.trim_start().starts_with('.') {
            let _ = editor.add_history_entry(line.trim());
            match dot_command(line.trim(), session, &mut printer) {
                Flow::Continue => continue,
                Flow::Quit => break,
            }
        }
        if !statement.is_empty() {
            statement.push('\n');
        }
        statement.push_str(&line);
        match scan(&statement) {
            Input::Blank => statement.clear(),
            Input::Open => {}
            Input::Complete => {
                let _ = editor.add_history_entry(statement.as_str());
                execute(session, &statement, &printer);
                statement.clear();
            }
        }
    }
    if let Some(path) = &history {
        if let Err(e) = editor.save_history(path) {
            eprintln!("Warning: cannot save history to '{}': {e}", path.display());
        }
    }
    ExitCode::SUCCESS
}

/// Runs one complete input; any failure is printed and the shell goes on.
fn execute(session: &Session, text: &str, printer: &Printer) {
    let mut out = io::stdout().lock();
    // A bug in the engine must not end the session: a panic becomes an error
    // (the panic hook has already printed its message).
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        run_text(session, text, printer, &mut out)
    }));
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(RunError::Query(e))) => eprint!("{}", render_error(&e, text)),
        Ok(Err(RunError::Output(e))) => eprintln!("Error: cannot write the output: {e}"),
        Err(_) => eprintln!("Error: internal error (panic) while running the statement"),
    }
    let _ = out.flush();
}

enum Flow {
    Continue,
    Quit,
}

fn dot_command(line: &str, session: &Session, printer: &mut Printer) -> Flow {
    let mut words = line.split_whitespace();
    let command = words.next().unwrap_or_default();
    let argument = words.next();
    match (command, argument) {
        (".quit" | ".exit", _) => return Flow::Quit,
        (".help", _) => println!("{HELP}"),
        (".tables", _) => {
            for name in session.table_names() {
                println!("{name}");
            }
        }
        (".timer", Some("on")) => printer.timer = true,
        (".timer", Some("off")) => printer.timer = false,
        (".timer", _) => eprintln!("Error: usage: .timer on|off"),
        (".mode", Some(name)) => match OutputFormat::from_str(name, true) {
            Ok(format) => printer.format = format,
            Err(_) => eprintln!("Error: unknown mode '{name}' (table, csv, json, markdown)"),
        },
        (".mode", None) => eprintln!("Error: usage: .mode table|csv|json|markdown"),
        _ => eprintln!("Error: unknown command '{command}' (try .help)"),
    }
    Flow::Continue
}

/// `~/.quarry_history`, when there is a home directory.
fn history_path() -> Option<PathBuf> {
    std::env::home_dir()
        .filter(|home| !home.as_os_str().is_empty())
        .map(|home| home.join(".quarry_history"))
}
