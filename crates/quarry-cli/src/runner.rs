//! Batch mode: the SQL of -c, -f, SCRIPT and stdin, in order. The first
//! error stops the run with exit code 1 (`--no-bail`: the run goes on, and
//! the exit code is 1 if anything failed).

use std::io::{self, Read};
use std::process::ExitCode;

use super::args::Source;
use super::shell::{Shell, Status};

pub fn run_sources(shell: &mut Shell, sources: &[Source]) -> ExitCode {
    for source in sources {
        let text = match read(source) {
            Ok(text) => text,
            Err(e) => {
                eprintln!("Error: {e}");
                shell.errors += 1;
                if shell.bails() {
                    break;
                }
                continue;
            }
        };
        let name = match source {
            Source::File(path) => Some(path.to_string_lossy().into_owned()),
            Source::Command(_) | Source::Stdin => None,
        };
        match shell.run_text(&text, name.as_deref()) {
            Status::Done => {}
            Status::Failed | Status::Quit => break,
        }
    }
    if shell.errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
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
