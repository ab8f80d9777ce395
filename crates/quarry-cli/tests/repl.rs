//! The interactive shell driven as a person would: the binary runs on a
//! pseudo-terminal, the test types keys (Enter, Tab, Ctrl-C, arrows) and
//! reads the screen output. Each test makes its own files and history.

#![cfg(unix)]

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PROMPT: &str = "quarry> ";
const WAIT: Duration = Duration::from_secs(60);

/// The shell on a pseudo-terminal.
struct Pty {
    master: File,
    child: Child,
    /// Everything the shell wrote so far.
    output: Arc<Mutex<Vec<u8>>>,
    /// How far `expect` has read, in the text without escape sequences.
    seen: usize,
}

impl Pty {
    fn spawn(dir: &Path, history: &Path) -> Pty {
        let (mut master, mut slave) = (0, 0);
        let size = libc::winsize {
            ws_row: 50,
            ws_col: 160,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: openpty fills in two new descriptors that we then own.
        let rc = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                &size,
            )
        };
        assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: both descriptors are open and owned by nobody else.
        let (master, slave) = unsafe { (File::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        let mut command = Command::new(env!("CARGO_BIN_EXE_quarry"));
        command
            .args(["--threads", "2"])
            .current_dir(dir)
            .env("TERM", "xterm-256color")
            .env("QUARRY_HISTORY", history)
            .env_remove("NO_COLOR")
            .stdin(Stdio::from(slave.try_clone().expect("dup")))
            .stdout(Stdio::from(slave.try_clone().expect("dup")))
            .stderr(Stdio::from(slave));
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            command.pre_exec(|| {
                // A session of its own with the terminal as its controlling
                // terminal, so that Ctrl-C becomes SIGINT for it.
                if libc::setsid() == -1 || libc::ioctl(0, libc::TIOCSCTTY as _, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().expect("start quarry");
        drop(command);
        let output = Arc::new(Mutex::new(Vec::new()));
        let mut reader = master.try_clone().expect("dup master");
        let mut answer = master.try_clone().expect("dup master");
        let sink = output.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // Ends with EIO once the shell has exited.
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                // The line editor asks where the cursor is: say column 1.
                if buf[..n].windows(4).any(|w| w == b"\x1b[6n") {
                    let _ = answer.write_all(b"\x1b[1;1R");
                }
                sink.lock()
                    .expect("output lock")
                    .extend_from_slice(&buf[..n]);
            }
        });
        Pty {
            master,
            child,
            output,
            seen: 0,
        }
    }

    fn send(&mut self, keys: &str) {
        self.master.write_all(keys.as_bytes()).expect("type");
        self.master.flush().expect("flush");
    }

    /// Everything so far, as raw bytes (with escape sequences).
    fn raw(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().expect("output lock")).into_owned()
    }

    /// Waits until `needle` shows after what was already read; returns the
    /// text up to and with it.
    fn expect(&mut self, needle: &str) -> String {
        let started = Instant::now();
        loop {
            let text = plain(&self.raw());
            if let Some(at) = text.get(self.seen..).and_then(|rest| rest.find(needle)) {
                let end = self.seen + at + needle.len();
                let found = text[self.seen..end].to_string();
                self.seen = end;
                return found;
            }
            if started.elapsed() > WAIT {
                panic!(
                    "no {needle:?} within {WAIT:?}; the screen after what was read:\n{}",
                    text.get(self.seen..).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the shell sits at an empty prompt (the output ends with
    /// it: the line editor redraws the prompt with every key typed, so an
    /// earlier prompt in the output is no sign of being done); returns what
    /// came before it.
    fn expect_prompt(&mut self) -> String {
        let started = Instant::now();
        loop {
            let text = plain(&self.raw());
            let rest = text.get(self.seen..).unwrap_or_default();
            if let Some(before) = rest.strip_suffix(PROMPT) {
                let before = before.to_string();
                self.seen = text.len();
                return before;
            }
            if started.elapsed() > WAIT {
                panic!("no prompt within {WAIT:?}; the screen after what was read:\n{rest}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Types a line, Enter, and waits for the next prompt; returns the screen
    /// between.
    fn run(&mut self, line: &str) -> String {
        self.send(line);
        self.send("\r");
        self.expect_prompt()
    }

    fn wait_exit(mut self) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            if started.elapsed() > WAIT {
                let _ = self.child.kill();
                panic!("the shell did not exit; screen:\n{}", plain(&self.raw()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        // A failed test must not leave a shell running.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The text without terminal escape sequences and carriage returns.
fn plain(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => match chars.next() {
                // CSI: parameters, then one final byte in @..~
                Some('[') => {
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
                // OSC: up to BEL or ESC \
                Some(']') => {
                    while let Some(c) = chars.next() {
                        if c == '\x07' || (c == '\x1b' && chars.next_if_eq(&'\\').is_some()) {
                            break;
                        }
                    }
                }
                _ => {}
            },
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

fn start() -> (tempfile::TempDir, Pty) {
    let dir = tempfile::tempdir().expect("temp dir");
    let history = dir.path().join("history.txt");
    let mut pty = Pty::spawn(dir.path(), &history);
    pty.expect_prompt();
    (dir, pty)
}

fn quit(mut pty: Pty) {
    pty.send(".quit\r");
    let status = pty.wait_exit();
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_statement_continues_over_lines_under_its_own_prompt() {
    let (_dir, mut pty) = start();
    pty.send("SELECT 40 +\r");
    pty.expect("   ...> ");
    pty.send("2 AS answer\r");
    pty.expect("   ...> ");
    let out = pty.run(";");
    assert!(out.contains("answer") && out.contains("42"), "{out}");
    assert!(out.contains("(1 row)"), "a footer on a terminal: {out}");
    // Keywords, numbers and strings are colored as they are typed.
    let raw = pty.raw();
    assert!(
        raw.contains("\x1b[1;34mSELECT\x1b[0m"),
        "keyword color: {raw:?}"
    );
    assert!(raw.contains("\x1b[33m40\x1b[0m"), "number color: {raw:?}");
    pty.run("SELECT 'x;y' AS s;");
    assert!(pty.raw().contains("\x1b[32m'x;y'\x1b[0m"), "string color");
    // An error points into the statement, and the session goes on.
    let out = pty.run("SELECT nosuch\nFROM (SELECT 1 AS nosuck);");
    assert!(out.contains("did you mean 'nosuck'?"), "{out}");
    assert!(out.contains("line 1: SELECT nosuch"), "{out}");
    quit(pty);
}

#[test]
fn tab_completes_paths_tables_columns_and_keywords() {
    let (dir, mut pty) = start();
    let rows: String = (1..=10).map(|i| format!("{i},n{i}\n")).collect();
    std::fs::write(
        dir.path().join("numbers.csv"),
        format!("amount,label\n{rows}"),
    )
    .expect("csv");
    // A path inside quotes: a single file also gets its closing quote.
    pty.send("CREATE VIEW numbers_view AS SELECT * FROM 'numb\t");
    pty.expect("'numbers.csv'");
    let out = pty.run(";");
    assert!(out.contains("OK"), "{out}");
    // A keyword in the case typed, a table, a column of a table named.
    let out = pty.run("sel\t count(*) AS n FROM numbers_v\t WHERE amo\t > 7;");
    assert!(
        out.contains("select count(*) AS n FROM numbers_view WHERE amount > 7;"),
        "{out}"
    );
    assert!(out.contains("│ 3 │"), "{out}");
    // Two choices: Tab lists them.
    pty.send("SELECT numbers_view.\t\t");
    pty.expect("amount");
    pty.expect("label");
    pty.send("\x03");
    pty.expect_prompt();
    quit(pty);
}

#[test]
fn ctrl_c_cancels_a_running_query_and_twice_at_the_prompt_leaves() {
    let (dir, mut pty) = start();
    // 100,000 × 1,000,000 pairs, with each probe batch alone meeting
    // billions: hours of work, which must stop between parts of a batch.
    // (`<>` keeps it a nested loop: `<` would be a range join, and its
    // pairs only counted.)
    let small: String = (0..100_000).map(|i| format!("{i}\n")).collect();
    std::fs::write(dir.path().join("small.csv"), format!("y\n{small}")).expect("csv");
    let mut big = String::from("x\n");
    for i in 0..1_000_000 {
        big.push_str(&format!("{}\n", i % 5_000));
    }
    std::fs::write(dir.path().join("big.csv"), big).expect("csv");
    pty.send("SELECT count(*) FROM 'small.csv' a, 'big.csv' b WHERE a.y <> b.x;\r");
    // The progress bar shows on a terminal once the query runs a moment.
    pty.expect("tasks");
    let cancelled = Instant::now();
    pty.send("\x03");
    pty.expect("query cancelled");
    assert!(
        cancelled.elapsed() < Duration::from_secs(2),
        "cancel took {:?}",
        cancelled.elapsed()
    );
    pty.expect_prompt();
    let out = pty.run("SELECT 7 AS seven;");
    assert!(out.contains("│     7 │"), "the session goes on: {out}");
    // Ctrl-C on a typed line drops it; on an empty prompt it warns first.
    pty.send("SELECT 'never run' AS dropped");
    pty.expect("dropped");
    pty.send("\x03");
    pty.expect_prompt();
    pty.send("\x03");
    pty.expect("Ctrl-C again to leave");
    // (a Ctrl-C sent before the prompt is back reaches no line editor: a
    // loaded machine showed it)
    pty.expect_prompt();
    pty.send("\x03");
    let screen = plain(&pty.raw());
    let status = pty.wait_exit();
    assert!(status.success(), "{status:?}");
    assert!(
        !screen.contains("│ never run"),
        "the dropped line ran: {screen}"
    );
}

#[test]
fn dot_commands() {
    let (dir, mut pty) = start();
    let out = pty.run(".help");
    for command in [
        ".tables", ".schema", ".mode", ".timer", ".maxrows", ".read", ".output", ".once", ".open",
        ".tpch", ".quit",
    ] {
        assert!(out.contains(command), "{command} missing from .help: {out}");
    }
    let out = pty.run(".tabels");
    assert!(out.contains("did you mean '.tables'?"), "{out}");

    let rows: String = (1..=100).map(|i| format!("{i},{}\n", i * i)).collect();
    std::fs::write(dir.path().join("squares.csv"), format!("n,sq\n{rows}")).expect("csv");
    let out = pty.run(".open squares.csv");
    assert!(out.contains("1 table: squares"), "{out}");
    let out = pty.run(".tables");
    assert!(out.contains("squares"), "{out}");
    let out = pty.run(".schema squares");
    assert!(
        out.contains("squares (") && out.contains("n BIGINT") && out.contains("sq BIGINT"),
        "{out}"
    );

    // Long results on a terminal: head, tail and the count.
    let out = pty.run(".maxrows 4");
    assert!(!out.contains("Error"), "{out}");
    let out = pty.run("SELECT n FROM squares ORDER BY n;");
    assert!(out.contains("(100 rows, 4 shown"), "{out}");
    assert!(
        out.contains("│   2 │") && out.contains("│  99 │") && out.contains('…'),
        "{out}"
    );
    assert!(!out.contains("│  50 │"), "{out}");

    pty.run(".mode csv");
    pty.run(".timer on");
    let out = pty.run("SELECT n, sq FROM squares WHERE n = 12;");
    assert!(out.contains("n,sq\n12,144\n"), "{out}");
    assert!(out.contains("Run Time: "), "{out}");
    pty.run(".timer off");

    // .once: the next result only; .output: all until `.output`.
    pty.run(".once once.csv");
    pty.run("SELECT 1 AS one;");
    let out = pty.run("SELECT 2 AS two;");
    assert!(out.contains("two\n2"), "{out}");
    pty.run(".output all.csv");
    pty.run("SELECT 3 AS three;");
    pty.run("SELECT 4 AS four;");
    pty.run(".output");
    let out = pty.run("SELECT 5 AS five;");
    assert!(out.contains("five\n5"), "{out}");
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).expect(name);
    assert_eq!(read("once.csv"), "one\n1\n");
    assert_eq!(read("all.csv"), "three\n3\nfour\n4\n");

    std::fs::write(
        dir.path().join("script.sql"),
        ".mode line\nSELECT 6 AS six,\n  'six' AS word;\n",
    )
    .expect("script");
    let out = pty.run(".read script.sql");
    assert!(out.contains(" six = 6\nword = six"), "{out}");

    // TPC-H in one line.
    pty.run(".mode table");
    let out = pty.run(".tpch 0.01 tpch");
    assert!(out.contains("lineitem") && out.contains("nation"), "{out}");
    let out = pty.run("SELECT count(*) AS nations FROM nation;");
    assert!(out.contains("│      25 │"), "{out}");
    quit(pty);
}

#[test]
fn history_is_kept_across_sessions() {
    let dir = tempfile::tempdir().expect("temp dir");
    let history = dir.path().join("history.txt");
    let mut pty = Pty::spawn(dir.path(), &history);
    pty.expect_prompt();
    pty.send("SELECT 31 +\r");
    pty.expect("   ...> ");
    pty.run("11 AS again;");
    quit(pty);
    let saved = std::fs::read_to_string(&history).expect("history file");
    assert!(saved.contains("SELECT 31 +"), "{saved}");

    // Up arrow (twice: .quit came last) brings the whole statement back.
    let mut pty = Pty::spawn(dir.path(), &history);
    pty.expect_prompt();
    pty.send("\x1b[A");
    pty.expect(".quit");
    pty.send("\x1b[A");
    pty.expect("11 AS again;");
    pty.send("\r");
    let out = pty.expect_prompt();
    assert!(out.contains("42"), "{out}");
    quit(pty);
}
