//! The interactive shell: a statement runs when Enter ends it with `;`
//! (Enter inside an open statement continues it on a new line, under the
//! `   ...>` prompt), dot commands (`.help`) control the shell, errors are
//! printed and the session goes on.
//!
//! Ctrl-C while a query runs cancels it; Ctrl-C while typing drops the
//! statement; at an empty prompt, Ctrl-C twice in a row leaves (so does
//! Ctrl-D or `.quit`). History is kept in `~/.quarry_history` (or the file
//! named by `QUARRY_HISTORY`).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rustyline::error::ReadlineError;
use rustyline::history::FileHistory;
use rustyline::{CompletionType, Config, Editor, EventHandler, KeyCode, KeyEvent, Modifiers};

use super::helper::{
    strip_continuations, ContinueOnEnter, Key, NoteInterrupt, SkipIndent, SqlHelper, PROMPT,
};
use super::shell::{Shell, Status};

/// Runs the shell until `.quit`, Ctrl-D or a second Ctrl-C.
pub fn run(shell: &mut Shell) -> ExitCode {
    let session = shell.session();
    let config = Config::builder()
        .auto_add_history(false)
        .history_ignore_dups(true)
        .and_then(|c| c.max_history_size(10_000))
        .map(|c| c.completion_type(CompletionType::List).build());
    let editor = config.and_then(Editor::<SqlHelper, FileHistory>::with_config);
    let mut editor = match editor {
        Ok(editor) => editor,
        Err(e) => {
            eprintln!("Error: cannot start the line editor: {e}");
            return ExitCode::FAILURE;
        }
    };
    editor.set_helper(Some(SqlHelper::new(session)));
    editor.bind_sequence(
        KeyEvent(KeyCode::Enter, Modifiers::NONE),
        EventHandler::Conditional(Box::new(ContinueOnEnter)),
    );
    for (key, keys) in [
        (
            Key::Left,
            [
                KeyEvent(KeyCode::Left, Modifiers::NONE),
                KeyEvent::ctrl('B'),
            ],
        ),
        (
            Key::Right,
            [
                KeyEvent(KeyCode::Right, Modifiers::NONE),
                KeyEvent::ctrl('F'),
            ],
        ),
        (
            Key::Backspace,
            [
                KeyEvent(KeyCode::Backspace, Modifiers::NONE),
                KeyEvent::ctrl('H'),
            ],
        ),
    ] {
        for event in keys {
            editor.bind_sequence(event, EventHandler::Conditional(Box::new(SkipIndent(key))));
        }
    }
    let empty_interrupt = Arc::new(AtomicBool::new(false));
    editor.bind_sequence(
        KeyEvent::ctrl('C'),
        EventHandler::Conditional(Box::new(NoteInterrupt(empty_interrupt.clone()))),
    );
    // While a query runs the terminal sends SIGINT: cancel the query. (While
    // a line is read, the editor takes Ctrl-C as a key instead.)
    let cancel = session.cancel_flag();
    if let Err(e) = ctrlc::set_handler(move || cancel.store(true, Ordering::Relaxed)) {
        eprintln!("Warning: Ctrl-C will not cancel queries: {e}");
    }

    let history = history_path();
    if let Some(path) = &history {
        // The first run has no history file yet: nothing to report.
        let _ = editor.load_history(path);
    }
    println!(
        "quarry {}. Statements end with ;  Type .help for help.",
        env!("CARGO_PKG_VERSION")
    );

    // Ctrl-C at an empty prompt once: the next one leaves.
    let mut leaving = false;
    loop {
        let buffer = match editor.readline(PROMPT) {
            Ok(buffer) => buffer,
            Err(ReadlineError::Interrupted) => {
                if !empty_interrupt.load(Ordering::Relaxed) {
                    leaving = false;
                } else if leaving {
                    break;
                } else {
                    leaving = true;
                    println!("(Ctrl-C again to leave, or .quit)");
                }
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                eprintln!("Error: {e}");
                break;
            }
        };
        leaving = false;
        if buffer.trim().is_empty() {
            continue;
        }
        let _ = editor.add_history_entry(buffer.trim_end());
        let text = strip_continuations(&buffer);
        // A bug in the engine must not end the session: a panic becomes an
        // error (the panic hook has already printed its message).
        let echo_off = EchoOff::new();
        let outcome = catch_unwind(AssertUnwindSafe(|| shell.run_text(&text, None)));
        drop(echo_off);
        match outcome {
            Ok(Status::Quit) => break,
            Ok(Status::Done | Status::Failed) => {}
            Err(_) => eprintln!("Error: internal error (panic) while running the statement"),
        }
    }
    if let Some(path) = &history {
        if let Err(e) = editor.save_history(path) {
            eprintln!("Warning: cannot save history to '{}': {e}", path.display());
        }
    }
    ExitCode::SUCCESS
}

/// While a statement runs, the terminal does not echo keys: an echoed `^C`
/// or typed-ahead text would push the progress bar's line (which fills the
/// terminal's width) over the edge, and the bar could not erase itself.
struct EchoOff {
    saved: Option<libc::termios>,
}

impl EchoOff {
    fn new() -> Self {
        // SAFETY: tcgetattr and tcsetattr on stdin with a termios value of
        // our own; on any failure the terminal is left as it was.
        unsafe {
            let mut termios: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(libc::STDIN_FILENO, &mut termios) != 0 {
                return EchoOff { saved: None };
            }
            let saved = termios;
            termios.c_lflag &= !libc::ECHO;
            if libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &termios) != 0 {
                return EchoOff { saved: None };
            }
            EchoOff { saved: Some(saved) }
        }
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            // SAFETY: restores the settings read in `new`.
            unsafe {
                libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, saved);
            }
        }
    }
}

/// `$QUARRY_HISTORY`, else `~/.quarry_history` when there is a home directory.
fn history_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("QUARRY_HISTORY").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    std::env::home_dir()
        .filter(|home| !home.as_os_str().is_empty())
        .map(|home| home.join(".quarry_history"))
}
