//! Running SQL text through the session and printing each statement's result
//! as soon as it is ready; batch mode (-c, -f, SCRIPT, stdin) on top of it.

use std::io::{self, BufWriter, Read, Write};
use std::process::ExitCode;
use std::time::Instant;

use super::args::Source;
use super::format::{OutputError, Printer};
use super::report::render_error;
use crate::{QuarryError, Session};

/// Why running a text stopped.
#[derive(Debug)]
pub enum RunError {
    /// A statement failed: report it against the text.
    Query(QuarryError),
    /// The output could not be written.
    Output(OutputError),
}

/// Runs every statement of `text`, printing each result; stops at the first
/// error of a statement or of the output.
pub fn run_text(
    session: &Session,
    text: &str,
    printer: &Printer,
    out: &mut dyn Write,
) -> Result<(), RunError> {
    let mut output_error = None;
    let mut start = Instant::now();
    let outcome = session.sql_each(text, &mut |result| {
        if let Err(e) = printer.print(out, &result, start.elapsed()) {
            // Stop the remaining statements; the real cause is kept aside.
            let message = e.to_string();
            output_error = Some(e);
            return Err(QuarryError::Io(message));
        }
        start = Instant::now();
        Ok(())
    });
    match output_error {
        Some(e) => Err(RunError::Output(e)),
        None => outcome.map_err(RunError::Query),
    }
}

/// Batch mode: runs the sources in order and stops at the first error
/// (exit code 1, message on stderr).
pub fn run_sources(session: &Session, sources: &[Source], printer: &Printer) -> ExitCode {
    let mut out = BufWriter::new(io::stdout().lock());
    for source in sources {
        let text = match read(source) {
            Ok(text) => text,
            Err(e) => {
                eprintln!("Error: {e}");
                return ExitCode::FAILURE;
            }
        };
        match run_text(session, &text, printer, &mut out) {
            Ok(()) => {}
            Err(RunError::Query(e)) => {
                eprint!("{}", render_error(&e, &text));
                return ExitCode::FAILURE;
            }
            Err(RunError::Output(e)) if e.is_broken_pipe() => return ExitCode::SUCCESS,
            Err(RunError::Output(e)) => {
                eprintln!("Error: cannot write the output: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

fn read(source: &Source) -> Result<String, String> {
    match source {
        Source::Command(sql) => Ok(sql.clone()),
        Source::File(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read '{}': {e}", path.display())),
        Source::Stdin => {
            let mut text = String::new();
            io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| format!("cannot read stdin: {e}"))?;
            Ok(text)
        }
    }
}
