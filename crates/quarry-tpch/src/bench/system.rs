//! What the harness needs to know about the machine and the process: peak
//! resident memory, today's date, the cores, the CPU, the git commit.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// The peak resident set size of this process so far, in bytes: on Linux
/// `VmHWM` of `/proc/self/status` (getrusage's `ru_maxrss` also counts the
/// parent's memory, inherited through fork and exec), elsewhere `ru_maxrss`.
pub fn peak_rss_bytes() -> Option<u64> {
    vm_hwm("self").or_else(max_rss)
}

/// The peak resident set size of another process (Linux only).
pub fn peak_rss_bytes_of(pid: u32) -> Option<u64> {
    vm_hwm(&pid.to_string())
}

fn vm_hwm(process: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{process}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(not(unix))]
fn max_rss() -> Option<u64> {
    None
}

#[cfg(unix)]
fn max_rss() -> Option<u64> {
    // SAFETY: getrusage only writes into the struct we hand it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    if rc != 0 {
        return None;
    }
    let max = u64::try_from(usage.ru_maxrss).ok()?;
    // Linux counts KiB, macOS bytes.
    Some(if cfg!(target_os = "macos") {
        max
    } else {
        max * 1024
    })
}

/// (year, month, day) of a count of days since 1970-01-01 (proleptic
/// Gregorian; H. Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A moment as (`YYYY-MM-DD`, `YYYY-MM-DDTHH:MM:SSZ`), in UTC.
pub fn utc_date_and_time(t: SystemTime) -> (String, String) {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    let date = format!("{y:04}-{m:02}-{d:02}");
    let time = format!("{date}T{:02}:{:02}:{:02}Z", s / 3600, (s / 60) % 60, s % 60);
    (date, time)
}

/// The machine the benchmark ran on.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Machine {
    /// Cores available to this process.
    pub cores: usize,
    pub memory_bytes: Option<u64>,
    pub cpu: Option<String>,
    pub os: String,
    pub arch: String,
    /// The load averages (1, 5, 15 minutes) when the benchmark started: other
    /// work on the machine skews the times.
    pub load_average: Option<[f64; 3]>,
}

impl Machine {
    pub fn this() -> Machine {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let memory_bytes = std::fs::read_to_string("/proc/meminfo").ok().and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map(|kib| kib * 1024)
        });
        let cpu = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        });
        let load_average = std::fs::read_to_string("/proc/loadavg").ok().and_then(|t| {
            let v: Vec<f64> = t
                .split_whitespace()
                .take(3)
                .filter_map(|x| x.parse().ok())
                .collect();
            <[f64; 3]>::try_from(v).ok()
        });
        Machine {
            cores,
            memory_bytes,
            cpu,
            os: std::env::consts::OS.to_string(),
            arch: std::env::consts::ARCH.to_string(),
            load_average,
        }
    }
}

/// `git describe`-like: the short commit of `dir`'s repository, with
/// `+dirty` when tracked files changed; `None` outside a repository.
pub fn git_commit(dir: &Path) -> Option<String> {
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = run(&["rev-parse", "--short", "HEAD"]).filter(|c| !c.is_empty())?;
    let dirty = run(&["status", "--porcelain", "--untracked-files=no"])
        .map(|s| !s.is_empty())
        .unwrap_or(false);
    Some(if dirty {
        format!("{commit}+dirty")
    } else {
        commit
    })
}

/// The command line as a person would type it: `quarry` and the arguments,
/// quoted for a POSIX shell where needed.
pub fn command_line() -> String {
    let mut words = vec!["quarry".to_string()];
    words.extend(std::env::args().skip(1).map(|a| shell_quote(&a)));
    words.join(" ")
}

pub fn shell_quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./,=:+@%".contains(c));
    if safe {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(9204), (1995, 3, 15));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_764_093_600 + 59);
        assert_eq!(
            utc_date_and_time(t),
            ("2025-11-25".to_string(), "2025-11-25T18:00:59Z".to_string())
        );
    }

    #[test]
    fn peak_rss_is_some_megabytes() {
        let rss = peak_rss_bytes().unwrap();
        assert!(rss > 1 << 20, "{rss}");
        #[cfg(unix)]
        assert!(max_rss().unwrap() > 1 << 20);
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("--sf"), "--sf");
        assert_eq!(shell_quote("1,5,9"), "1,5,9");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
