//! The progress bar of a running query, on stderr: tasks done of all, rows
//! read, bytes fetched from files and object stores, time so far. It appears only when a query runs longer than a moment
//! and only on a terminal, and it is gone when the query ends.
//!
//! The engine calls back after each finished task, from worker threads; the
//! callback only stores numbers. A drawing thread per statement reads them.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use quarry_core::runtime::Progress;
use quarry_core::Session;

/// How long a statement runs before its bar appears.
const DELAY: Duration = Duration::from_millis(500);
/// How often the bar is redrawn.
const TICK: Duration = Duration::from_millis(100);

#[derive(Default)]
struct Counters {
    tasks_done: AtomicUsize,
    tasks_total: AtomicUsize,
    rows_read: AtomicUsize,
    bytes_fetched: AtomicU64,
}

/// Draws a bar for each statement that runs long enough.
pub struct ProgressMeter {
    counters: Arc<Counters>,
}

impl ProgressMeter {
    /// Hooks the meter into the session's progress callback.
    pub fn install(session: &Session) -> Self {
        let counters = Arc::new(Counters::default());
        let shared = counters.clone();
        session.set_progress(Some(Arc::new(move |p: &Progress| {
            shared.tasks_done.store(p.tasks_done, Ordering::Relaxed);
            shared.tasks_total.store(p.tasks_total, Ordering::Relaxed);
            shared.rows_read.store(p.rows_read, Ordering::Relaxed);
            shared
                .bytes_fetched
                .store(p.bytes_fetched, Ordering::Relaxed);
        })));
        ProgressMeter { counters }
    }

    /// Starts watching one statement; the bar goes away when the guard drops.
    pub fn start(&self) -> ProgressGuard {
        for counter in [
            &self.counters.tasks_done,
            &self.counters.tasks_total,
            &self.counters.rows_read,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
        self.counters.bytes_fetched.store(0, Ordering::Relaxed);
        let (stop, stopped) = mpsc::channel::<()>();
        let counters = self.counters.clone();
        let thread = std::thread::Builder::new()
            .name("quarry-progress".into())
            .spawn(move || {
                // A statement that ends within the delay never shows a bar.
                if stopped.recv_timeout(DELAY) != Err(RecvTimeoutError::Timeout) {
                    return;
                }
                let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
                    .with_elapsed(DELAY);
                bar.set_style(style());
                bar.tick();
                loop {
                    let total = counters.tasks_total.load(Ordering::Relaxed);
                    if total > 0 {
                        bar.set_length(total as u64);
                    }
                    bar.set_position(counters.tasks_done.load(Ordering::Relaxed) as u64);
                    bar.set_message(format!(
                        "{} rows · {} fetched",
                        thousands(counters.rows_read.load(Ordering::Relaxed)),
                        quarry_core::runtime::memory::format_bytes(
                            counters.bytes_fetched.load(Ordering::Relaxed) as usize
                        )
                    ));
                    if stopped.recv_timeout(TICK) != Err(RecvTimeoutError::Timeout) {
                        break;
                    }
                }
                bar.finish_and_clear();
            })
            .ok();
        ProgressGuard {
            stop: Some(stop),
            thread,
        }
    }
}

fn style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{spinner} {elapsed_precise} [{bar:30}] {pos}/{len} tasks · {msg}   (Ctrl-C cancels)",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ")
}

/// While it lives, the statement's bar may show; dropping it clears the bar.
pub struct ProgressGuard {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for ProgressGuard {
    fn drop(&mut self) {
        // Wakes the drawing thread at once; it clears the bar and ends.
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }

    #[test]
    fn a_quick_statement_draws_nothing_and_stops_at_once() {
        let session = Session::new(quarry_core::SessionConfig::default()).expect("session");
        let meter = ProgressMeter::install(&session);
        let started = std::time::Instant::now();
        drop(meter.start());
        assert!(started.elapsed() < DELAY);
    }
}
