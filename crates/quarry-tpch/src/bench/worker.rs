//! The engines' child processes: the events they print, quarry's own worker
//! (`quarry tpch bench-worker`), and the driver that runs a child, reads its
//! events, enforces the time limit and restarts it after a crash.
//!
//! Every engine runs in a child process of its own, one after the other, so
//! its peak resident memory is its own. A child prints one JSON object per
//! line on stdout ([`Event`]): `ready` once set up, `start` before each run
//! of a query, `query` with the times and the answer (or the error) of each
//! query, `done` at the end, or `fatal` when it cannot start.
//!
//! When a child dies or stays silent for longer than the time limit during a
//! query, that query is recorded as failed (with the exit status and the end
//! of its stderr) and a new child runs the queries that are left.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::compare::WireAnswer;
use super::system::{peak_rss_bytes, peak_rss_bytes_of};
use quarry_core::error::{QuarryError, Result};

/// One line of a child's stdout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Ready {
        engine: String,
        version: String,
        #[serde(default)]
        settings: BTreeMap<String, String>,
        #[serde(default)]
        notes: Vec<String>,
        #[serde(default)]
        peak_rss_bytes: Option<u64>,
    },
    Start {
        query: usize,
        run: usize,
    },
    Query {
        query: usize,
        #[serde(default)]
        seconds: Vec<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        answer: Option<WireAnswer>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        #[serde(default)]
        peak_rss_bytes: Option<u64>,
        /// quarry's memory figures of the query's first run.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        memory: Option<MemoryFigures>,
    },
    Done {
        #[serde(default)]
        peak_rss_bytes: Option<u64>,
    },
    Fatal {
        error: String,
    },
}

/// What a query did with the memory budget (quarry only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryFigures {
    /// The most memory reserved at once.
    pub peak_reserved_bytes: u64,
    /// Written to spill files, by operators and the partition store.
    pub spilled_bytes: u64,
    pub spill_files: usize,
    /// The operators that spilled, with what they wrote.
    #[serde(default)]
    pub operators: Vec<OperatorSpill>,
}

/// What one operator of the task graph spilled (over all its tasks).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperatorSpill {
    pub stage: usize,
    /// As EXPLAIN names it: `FinalAggregate(1 keys)`, `InnerJoin(…)`, `Sort`.
    pub operator: String,
    pub bytes: u64,
    pub files: usize,
}

impl MemoryFigures {
    fn of(stats: &quarry_core::runtime::RunStats) -> Self {
        let mut operators = Vec::new();
        for (stage, ops) in stats.op_metrics.iter().enumerate() {
            for (k, m) in ops.iter().enumerate() {
                if m.spilled.files > 0 {
                    operators.push(OperatorSpill {
                        stage,
                        operator: stats
                            .op_names
                            .get(stage)
                            .and_then(|n| n.get(k))
                            .cloned()
                            .unwrap_or_default(),
                        bytes: m.spilled.bytes,
                        files: m.spilled.files,
                    });
                }
            }
        }
        MemoryFigures {
            peak_reserved_bytes: stats.peak_memory as u64,
            spilled_bytes: stats.spilled_bytes,
            spill_files: stats.spill_files,
            operators,
        }
    }
}

fn emit(event: &Event) -> Result<()> {
    let mut line = serde_json::to_string(event)
        .map_err(|e| QuarryError::exec(format!("cannot encode an event: {e}")))?;
    line.push('\n');
    let mut out = std::io::stdout().lock();
    out.write_all(line.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| QuarryError::Io(format!("cannot write to stdout: {e}")))
}

/// `quarry tpch bench-worker`: registers the tables of `data`, runs each
/// query `runs` times through `Session::sql` and prints the events.
///
/// Timed, per run: `Session::sql` with the query text, which returns when
/// the whole result is materialised as Arrow batches.
pub fn quarry_worker(
    data: &Path,
    queries: &[usize],
    runs: usize,
    threads: Option<usize>,
    memory_limit: Option<&str>,
    cluster: Option<&str>,
) -> Result<()> {
    let mut config = quarry_core::SessionConfig::default();
    if let Some(t) = threads {
        config = config.with_threads(t);
    }
    let setup = |config: &mut quarry_core::SessionConfig| -> Result<quarry_core::Session> {
        if let Some(m) = memory_limit {
            config.set_memory_limit(m)?;
        }
        if let Some(c) = cluster {
            config.set("cluster", c)?;
        }
        let session = quarry_core::Session::new(config.clone())?;
        crate::register_tables(&session, data)?;
        Ok(session)
    };
    let session = match setup(&mut config) {
        Ok(s) => s,
        Err(e) => {
            emit(&Event::Fatal {
                error: e.to_string(),
            })?;
            return Err(e);
        }
    };
    let mut settings = BTreeMap::new();
    for name in ["threads", "target_partitions", "memory_limit", "cluster"] {
        if let Ok(value) = config.get(name) {
            settings.insert(name.to_string(), value);
        }
    }
    // On a cluster the memory is the driver's and the workers'.
    let workers = session.cluster().map(|c| c.worker_pids());
    let notes = match &workers {
        Some(pids) if !pids.is_empty() => vec![format!(
            "peak RSS: the driver + {} workers, each at its peak",
            pids.len()
        )],
        Some(_) => vec!["peak RSS: the driver's; its workers run elsewhere".into()],
        None => vec![],
    };
    let peak_rss_bytes = || {
        let workers: u64 = workers
            .iter()
            .flatten()
            .filter_map(|&pid| peak_rss_bytes_of(pid))
            .sum();
        peak_rss_bytes().map(|own| own + workers)
    };
    emit(&Event::Ready {
        engine: "quarry".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        settings,
        notes,
        peak_rss_bytes: peak_rss_bytes(),
    })?;
    for &n in queries {
        let sql = crate::query(n).ok_or_else(|| {
            QuarryError::Config(format!("no TPC-H query {n}: queries are numbered 1 to 22"))
        })?;
        let mut seconds = Vec::with_capacity(runs);
        let mut answer = None;
        let mut error = None;
        let mut memory = None;
        for run in 1..=runs.max(1) {
            emit(&Event::Start { query: n, run })?;
            let start = Instant::now();
            let result = match session.sql(sql) {
                Ok(result) => result,
                Err(e) => {
                    error = Some(e.to_string());
                    break;
                }
            };
            seconds.push(start.elapsed().as_secs_f64());
            // The first run's answer, made after its timing.
            if answer.is_none() {
                memory = session.last_run_stats().map(|s| MemoryFigures::of(&s));
                match WireAnswer::from_batches(&result.schema, &result.batches) {
                    Ok(a) => answer = Some(a),
                    Err(e) => {
                        error = Some(format!("cannot format the answer: {e}"));
                        break;
                    }
                }
            }
        }
        if error.is_some() {
            answer = None;
        }
        emit(&Event::Query {
            query: n,
            seconds,
            answer,
            error,
            peak_rss_bytes: peak_rss_bytes(),
            memory,
        })?;
    }
    emit(&Event::Done {
        peak_rss_bytes: peak_rss_bytes(),
    })
}

/// How to start a child for a list of queries.
#[derive(Debug, Clone)]
pub struct ChildCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Written to the child's stdin, which is then closed.
    pub stdin: Option<String>,
}

/// What one query gave.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueryOutcome {
    /// Wall time of each completed run.
    pub seconds: Vec<f64>,
    pub answer: Option<WireAnswer>,
    pub error: Option<String>,
    pub memory: Option<MemoryFigures>,
}

/// What an engine's child processes gave.
#[derive(Debug, Clone, Default)]
pub struct EngineOutcome {
    /// Why the engine could not run at all.
    pub fatal: Option<String>,
    pub version: Option<String>,
    pub settings: BTreeMap<String, String>,
    pub notes: Vec<String>,
    /// Peak RSS once set up, before the first query.
    pub baseline_rss_bytes: Option<u64>,
    /// Peak RSS over all its processes.
    pub peak_rss_bytes: Option<u64>,
    pub queries: BTreeMap<usize, QueryOutcome>,
    /// Processes started after one died or timed out.
    pub restarts: usize,
}

/// Progress reported by [`drive`].
#[derive(Debug)]
pub enum Progress<'a> {
    Run {
        query: usize,
        run: usize,
    },
    Query {
        query: usize,
        outcome: &'a QueryOutcome,
    },
}

enum Message {
    Line(String),
    Eof,
}

const STDERR_TAIL: usize = 2000;

fn max_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

fn tail_text(stderr: &Mutex<String>) -> String {
    let text = stderr.lock().map(|s| s.clone()).unwrap_or_default();
    let text = text.trim();
    if text.is_empty() {
        String::new()
    } else {
        format!("; stderr: {}", text.replace('\n', " | "))
    }
}

/// Runs `queries` in children made by `make` (given the queries left), each
/// query `runs` times, until all are done; a child silent for `timeout`
/// while it runs a query is killed.
pub fn drive(
    make: &dyn Fn(&[usize]) -> ChildCommand,
    queries: &[usize],
    timeout: Duration,
    progress: &dyn Fn(Progress<'_>),
) -> EngineOutcome {
    let mut outcome = EngineOutcome::default();
    let mut left: Vec<usize> = queries.to_vec();
    while !left.is_empty() {
        let command = make(&left);
        match run_child(&command, &mut left, timeout, &mut outcome, progress) {
            ChildEnd::Finished => {}
            ChildEnd::Restart => outcome.restarts += 1,
            ChildEnd::Fatal(e) => {
                outcome.fatal = Some(e);
                return outcome;
            }
        }
    }
    outcome
}

enum ChildEnd {
    Finished,
    Restart,
    Fatal(String),
}

fn run_child(
    command: &ChildCommand,
    left: &mut Vec<usize>,
    timeout: Duration,
    outcome: &mut EngineOutcome,
    progress: &dyn Fn(Progress<'_>),
) -> ChildEnd {
    let mut cmd = Command::new(&command.program);
    cmd.args(&command.args)
        .envs(command.env.iter().map(|(k, v)| (k, v)))
        .stdin(if command.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return ChildEnd::Fatal(format!("cannot start {}: {e}", command.program.display()))
        }
    };
    if let (Some(text), Some(mut pipe)) = (&command.stdin, child.stdin.take()) {
        // A child that dies at once closes the pipe: its exit tells why.
        let _ = pipe.write_all(text.as_bytes());
    }
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take();
    let reader = std::thread::spawn(move || {
        if let Some(out) = stdout {
            for line in BufReader::new(out).lines() {
                match line {
                    Ok(l) => {
                        if tx.send(Message::Line(l)).is_err() {
                            return;
                        }
                    }
                    Err(_) => break,
                }
            }
        }
        let _ = tx.send(Message::Eof);
    });
    let stderr_tail = Arc::new(Mutex::new(String::new()));
    let stderr = child.stderr.take();
    let tail = Arc::clone(&stderr_tail);
    let err_reader = std::thread::spawn(move || {
        let Some(mut err) = stderr else { return };
        let mut buf = [0u8; 4096];
        while let Ok(n) = err.read(&mut buf) {
            if n == 0 {
                break;
            }
            if let Ok(mut t) = tail.lock() {
                t.push_str(&String::from_utf8_lossy(&buf[..n]));
                if t.len() > 2 * STDERR_TAIL {
                    let mut cut = t.len() - STDERR_TAIL;
                    while !t.is_char_boundary(cut) {
                        cut += 1;
                    }
                    t.drain(..cut);
                }
            }
        }
    });

    let mut ready = false;
    let mut in_flight: Option<usize> = None;
    let mut done = false;
    let mut fatal: Option<String> = None;
    let mut timed_out = false;
    loop {
        let message = match rx.recv_timeout(timeout) {
            Ok(m) => m,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                timed_out = true;
                let _ = child.kill();
                break;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => Message::Eof,
        };
        let line = match message {
            Message::Eof => break,
            Message::Line(l) => l,
        };
        let event = match serde_json::from_str::<Event>(line.trim()) {
            Ok(e) => e,
            Err(_) => continue, // not an event: stray output
        };
        match event {
            Event::Ready {
                version,
                settings,
                notes,
                peak_rss_bytes,
                ..
            } => {
                ready = true;
                outcome.version = Some(version);
                outcome.settings = settings;
                for n in notes {
                    if !outcome.notes.contains(&n) {
                        outcome.notes.push(n);
                    }
                }
                if outcome.baseline_rss_bytes.is_none() {
                    outcome.baseline_rss_bytes = peak_rss_bytes;
                }
                outcome.peak_rss_bytes = max_opt(outcome.peak_rss_bytes, peak_rss_bytes);
            }
            Event::Start { query, run } => {
                in_flight = Some(query);
                progress(Progress::Run { query, run });
            }
            Event::Query {
                query,
                seconds,
                answer,
                error,
                peak_rss_bytes,
                memory,
            } => {
                in_flight = None;
                outcome.peak_rss_bytes = max_opt(outcome.peak_rss_bytes, peak_rss_bytes);
                if !left.contains(&query) {
                    continue;
                }
                left.retain(|q| *q != query);
                let mut result = QueryOutcome {
                    seconds,
                    answer,
                    error,
                    memory,
                };
                if result.error.is_none() {
                    let shape = match &result.answer {
                        None => Err("no answer".to_string()),
                        Some(a) => a.validate(),
                    };
                    if let Err(e) = shape {
                        result.error = Some(format!("malformed answer: {e}"));
                        result.answer = None;
                    }
                }
                progress(Progress::Query {
                    query,
                    outcome: &result,
                });
                outcome.queries.insert(query, result);
            }
            Event::Done { peak_rss_bytes } => {
                outcome.peak_rss_bytes = max_opt(outcome.peak_rss_bytes, peak_rss_bytes);
                done = true;
            }
            Event::Fatal { error } => fatal = Some(error),
        }
    }
    let status = child.wait();
    let _ = reader.join();
    let _ = err_reader.join();
    let status = match status {
        Ok(s) => s.to_string(),
        Err(e) => format!("unknown exit ({e})"),
    };
    let tail = tail_text(&stderr_tail);

    if let Some(e) = fatal {
        return ChildEnd::Fatal(e);
    }
    if !ready {
        return ChildEnd::Fatal(if timed_out {
            format!("did not start within {} s{tail}", timeout.as_secs_f64())
        } else {
            format!("the process ended before it was ready ({status}){tail}")
        });
    }
    if left.is_empty() {
        return ChildEnd::Finished;
    }
    // The child ended with queries left.
    let (query, why) = match in_flight {
        Some(q) if timed_out => (
            q,
            format!(
                "timed out: no answer within {} s, the process was killed",
                timeout.as_secs_f64()
            ),
        ),
        Some(q) => (
            q,
            format!("the process died during the query ({status}){tail}"),
        ),
        None => {
            let why = if done {
                "the worker did not run it".to_string()
            } else if timed_out {
                format!(
                    "timed out between queries after {} s",
                    timeout.as_secs_f64()
                )
            } else {
                format!("the process ended early ({status}){tail}")
            };
            // Nothing in flight to blame: give up on the rest.
            for q in std::mem::take(left) {
                let result = QueryOutcome {
                    error: Some(why.clone()),
                    ..Default::default()
                };
                progress(Progress::Query {
                    query: q,
                    outcome: &result,
                });
                outcome.queries.insert(q, result);
            }
            return ChildEnd::Finished;
        }
    };
    left.retain(|q| *q != query);
    let result = QueryOutcome {
        error: Some(why),
        ..Default::default()
    };
    progress(Progress::Query {
        query,
        outcome: &result,
    });
    outcome.queries.insert(query, result);
    if left.is_empty() {
        ChildEnd::Finished
    } else {
        ChildEnd::Restart
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A child made of `sh -c script` (the script ignores its queries).
    fn shell(script: &str) -> impl Fn(&[usize]) -> ChildCommand {
        let script = script.to_string();
        move |left: &[usize]| ChildCommand {
            program: "sh".into(),
            args: vec![
                "-c".into(),
                script.clone(),
                "sh".into(),
                left.iter()
                    .map(|q| q.to_string())
                    .collect::<Vec<_>>()
                    .join(" "),
            ],
            env: vec![],
            stdin: None,
        }
    }

    const READY: &str =
        r#"echo '{"event":"ready","engine":"x","version":"1","peak_rss_bytes":1000}'"#;

    #[test]
    fn events_round_trip() {
        let e = Event::Query {
            query: 3,
            seconds: vec![0.5],
            answer: Some(WireAnswer {
                columns: vec!["a".into()],
                types: vec!["Int64".into()],
                kinds: vec!["integer".into()],
                rows: vec![vec![Some("1".into())], vec![None]],
            }),
            error: None,
            peak_rss_bytes: Some(5),
            memory: Some(MemoryFigures {
                peak_reserved_bytes: 10,
                spilled_bytes: 20,
                spill_files: 1,
                operators: vec![OperatorSpill {
                    stage: 2,
                    operator: "Sort".into(),
                    bytes: 20,
                    files: 1,
                }],
            }),
        };
        let text = serde_json::to_string(&e).unwrap();
        assert!(text.starts_with(r#"{"event":"query","query":3"#), "{text}");
        assert_eq!(serde_json::from_str::<Event>(&text).unwrap(), e);
        let py = r#"{"event": "query", "query": 2, "seconds": [], "error": "boom", "peak_rss_bytes": 7}"#;
        assert!(matches!(
            serde_json::from_str::<Event>(py).unwrap(),
            Event::Query {
                error: Some(_),
                answer: None,
                ..
            }
        ));
    }

    #[test]
    fn a_crash_fails_the_query_and_the_rest_go_on() {
        // Each child answers its first query, crashes on the second.
        let script = format!(
            r#"{READY}
set -- $1
echo '{{"event":"start","query":'$1',"run":1}}'
echo '{{"event":"query","query":'$1',"seconds":[0.1],"answer":{{"columns":["a"],"kinds":["integer"],"rows":[["1"]]}},"peak_rss_bytes":2000}}'
[ -n "$2" ] || {{ echo '{{"event":"done","peak_rss_bytes":2000}}'; exit 0; }}
echo '{{"event":"start","query":'$2',"run":1}}'
echo 'segfault in query' >&2
exit 139"#
        );
        let make = shell(&script);
        let seen = Mutex::new(Vec::new());
        let out = drive(&make, &[1, 2, 3, 4, 5], Duration::from_secs(20), &|p| {
            if let Progress::Query { query, .. } = p {
                seen.lock().unwrap().push(query);
            }
        });
        assert!(out.fatal.is_none(), "{:?}", out.fatal);
        assert_eq!(out.restarts, 2);
        assert_eq!(seen.into_inner().unwrap(), vec![1, 2, 3, 4, 5]);
        for q in [1, 3, 5] {
            assert!(out.queries[&q].error.is_none(), "{q}");
            assert_eq!(out.queries[&q].seconds, vec![0.1]);
        }
        for q in [2, 4] {
            let e = out.queries[&q].error.as_deref().unwrap();
            assert!(e.contains("died during the query"), "{e}");
            assert!(e.contains("segfault in query"), "{e}");
        }
        assert_eq!(out.peak_rss_bytes, Some(2000));
        assert_eq!(out.baseline_rss_bytes, Some(1000));
    }

    #[test]
    fn a_silent_query_times_out() {
        let script = format!(
            r#"{READY}
set -- $1
echo '{{"event":"start","query":'$1',"run":1}}'
[ "$1" = 7 ] && exec sleep 30
echo '{{"event":"query","query":'$1',"seconds":[0.1],"answer":{{"columns":[],"kinds":[],"rows":[]}}}}'
echo '{{"event":"done"}}'"#
        );
        let make = shell(&script);
        let start = Instant::now();
        let out = drive(&make, &[7, 8], Duration::from_millis(500), &|_| {});
        assert!(start.elapsed() < Duration::from_secs(10));
        let e = out.queries[&7].error.as_deref().unwrap();
        assert!(e.starts_with("timed out"), "{e}");
        assert!(out.queries[&8].error.is_none());
    }

    #[test]
    fn fatal_and_missing_programs_stop_the_engine() {
        let make =
            shell(r#"echo '{"event":"fatal","error":"ModuleNotFoundError: duckdb"}'; exit 1"#);
        let out = drive(&make, &[1], Duration::from_secs(20), &|_| {});
        assert_eq!(out.fatal.as_deref(), Some("ModuleNotFoundError: duckdb"));
        assert!(out.queries.is_empty());

        let make = shell("echo oops >&2; exit 3");
        let out = drive(&make, &[1], Duration::from_secs(20), &|_| {});
        let e = out.fatal.unwrap();
        assert!(
            e.contains("ended before it was ready") && e.contains("oops"),
            "{e}"
        );

        let make = |_: &[usize]| ChildCommand {
            program: "/nonexistent/python".into(),
            args: vec![],
            env: vec![],
            stdin: Some("{}".into()),
        };
        let out = drive(&make, &[1], Duration::from_secs(20), &|_| {});
        assert!(out
            .fatal
            .unwrap()
            .contains("cannot start /nonexistent/python"));
    }

    #[test]
    fn malformed_answers_are_failures() {
        let script = format!(
            r#"{READY}
echo '{{"event":"query","query":1,"seconds":[0.1],"answer":{{"columns":["a","b"],"kinds":["text"],"rows":[]}}}}'
echo '{{"event":"query","query":2,"seconds":[0.1]}}'
echo '{{"event":"done"}}'"#
        );
        let out = drive(&shell(&script), &[1, 2], Duration::from_secs(20), &|_| {});
        assert!(out.queries[&1]
            .error
            .as_deref()
            .unwrap()
            .contains("malformed answer"));
        assert!(out.queries[&2]
            .error
            .as_deref()
            .unwrap()
            .contains("no answer"));
    }
}
