//! Profiles as Chrome traces: the trace-event JSON that Perfetto
//! (ui.perfetto.dev) and chrome://tracing open. One lane per worker thread,
//! one slice per task, and a lane above them with one slice per query, so that
//! idle cores and stragglers are plain to see.
//!
//! A profile collects every query of a run (`--profile FILE` or
//! `SET profile = 'FILE'`); the file is written anew after each query, so it
//! is complete whenever the run stops.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use quarry_core::runtime::RunStats;

/// Process id of the events (one process: quarry).
const PID: u64 = 1;
/// The lane of the queries; worker `w` is lane `w + 1`.
const QUERY_LANE: u64 = 0;

pub struct Profile {
    path: PathBuf,
    /// When the profile started: time zero of the trace.
    origin: Instant,
    events: Vec<Value>,
    /// Workers that have a named lane already.
    named_workers: usize,
    queries: usize,
}

impl Profile {
    pub fn new(path: PathBuf) -> Self {
        let events = vec![
            json!({"name": "process_name", "ph": "M", "pid": PID, "tid": QUERY_LANE,
                   "args": {"name": "quarry"}}),
            json!({"name": "thread_name", "ph": "M", "pid": PID, "tid": QUERY_LANE,
                   "args": {"name": "queries"}}),
            json!({"name": "thread_sort_index", "ph": "M", "pid": PID, "tid": QUERY_LANE,
                   "args": {"sort_index": 0}}),
        ];
        Profile {
            path,
            origin: Instant::now(),
            events,
            named_workers: 0,
            queries: 0,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Adds one query run that started at `started`, then writes the file.
    pub fn record(&mut self, sql: &str, started: Instant, stats: &RunStats) -> std::io::Result<()> {
        let offset = started.saturating_duration_since(self.origin);
        self.add(sql, offset, stats);
        self.write()
    }

    fn add(&mut self, sql: &str, offset: Duration, stats: &RunStats) {
        self.queries += 1;
        let workers = stats.busy.len().max(
            stats
                .task_records
                .iter()
                .map(|t| t.worker + 1)
                .max()
                .unwrap_or(0),
        );
        for w in self.named_workers..workers {
            let lane = w as u64 + 1;
            self.events.push(
                json!({"name": "thread_name", "ph": "M", "pid": PID, "tid": lane,
                                    "args": {"name": format!("worker {w}")}}),
            );
            self.events
                .push(json!({"name": "thread_sort_index", "ph": "M", "pid": PID,
                                    "tid": lane, "args": {"sort_index": lane}}));
        }
        self.named_workers = self.named_workers.max(workers);

        let busy: Vec<f64> = stats.busy.iter().map(|d| micros(*d) / 1000.0).collect();
        self.events.push(json!({
            "name": format!("query {}", self.queries),
            "cat": "query",
            "ph": "X",
            "pid": PID,
            "tid": QUERY_LANE,
            "ts": micros(offset),
            "dur": micros(stats.elapsed),
            "args": {
                "sql": one_line(sql),
                "tasks": stats.tasks,
                "rows_read": stats.rows_read,
                "bytes_fetched": stats.bytes_fetched,
                "busy_ms_per_worker": busy,
            },
        }));
        for t in &stats.task_records {
            self.events.push(json!({
                "name": format!("stage {}", t.stage),
                "cat": "task",
                "ph": "X",
                "pid": PID,
                "tid": t.worker as u64 + 1,
                "ts": micros(offset + t.start),
                "dur": micros(t.end.saturating_sub(t.start)),
                "args": {
                    "query": self.queries,
                    "stage": t.stage,
                    "partition": t.partition,
                    "rows_in": t.rows_in,
                },
            }));
        }
    }

    /// The trace as JSON text.
    fn to_json(&self) -> String {
        json!({"traceEvents": self.events, "displayTimeUnit": "ms"}).to_string()
    }

    fn write(&self) -> std::io::Result<()> {
        std::fs::write(&self.path, self.to_json())
    }
}

/// Microseconds, the unit of trace events (fractions allowed).
fn micros(d: Duration) -> f64 {
    d.as_nanos() as f64 / 1000.0
}

fn one_line(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use quarry_core::runtime::TaskRecord;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn stats() -> RunStats {
        let task = |stage, partition, worker, start, end| TaskRecord {
            stage,
            partition,
            worker,
            start: ms(start),
            end: ms(end),
            rows_in: 10,
        };
        RunStats {
            tasks: 3,
            rows_read: 30,
            busy: vec![ms(5), ms(2)],
            elapsed: ms(6),
            task_records: vec![
                task(0, 0, 0, 0, 3),
                task(0, 1, 1, 0, 2),
                task(1, 0, 0, 3, 5),
            ],
            ..RunStats::default()
        }
    }

    #[test]
    fn lanes_per_worker_and_slices_per_task() {
        let mut profile = Profile::new(PathBuf::from("unused.json"));
        profile.add("SELECT\n  1", ms(10), &stats());
        profile.add("SELECT 2", ms(20), &stats());
        let trace: Value = serde_json::from_str(&profile.to_json()).expect("valid JSON");
        let events = trace["traceEvents"].as_array().expect("events");
        let lanes: Vec<(&Value, &Value)> = events
            .iter()
            .filter(|e| e["name"] == "thread_name")
            .map(|e| (&e["tid"], &e["args"]["name"]))
            .collect();
        assert_eq!(
            lanes,
            [
                (&json!(0), &json!("queries")),
                (&json!(1), &json!("worker 0")),
                (&json!(2), &json!("worker 1")),
            ]
        );
        let tasks: Vec<&Value> = events.iter().filter(|e| e["cat"] == "task").collect();
        assert_eq!(tasks.len(), 6);
        // The third task of the second query: worker 0, 20 ms + 3 ms, 2 ms long.
        assert_eq!(tasks[5]["tid"], 1);
        assert_eq!(tasks[5]["ts"], 23000.0);
        assert_eq!(tasks[5]["dur"], 2000.0);
        assert_eq!(tasks[5]["name"], "stage 1");
        let queries: Vec<&Value> = events.iter().filter(|e| e["cat"] == "query").collect();
        assert_eq!(queries[0]["args"]["sql"], "SELECT 1");
        assert_eq!(queries[1]["ts"], 20000.0);
        assert_eq!(queries[1]["dur"], 6000.0);
    }
}
