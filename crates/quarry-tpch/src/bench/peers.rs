//! The peers (DuckDB, Polars) run by `tpch/peers.py` in a Python virtual
//! environment that the harness makes itself, at `tpch/.venv`, from the
//! pinned `tpch/requirements.txt`.
//!
//! The environment is built in a temporary directory next to it and renamed
//! into place once `pip install` succeeded, with a copy of the requirements
//! it was built from (`quarry-requirements.txt`): a half-made environment is
//! never used, and one built from other requirements is rebuilt.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The file inside a venv that records what it was built from.
const STAMP: &str = "quarry-requirements.txt";

/// The Python interpreter of a venv.
pub fn venv_python(venv: &Path) -> PathBuf {
    if cfg!(windows) {
        venv.join("Scripts").join("python.exe")
    } else {
        venv.join("bin").join("python")
    }
}

fn is_ready(venv: &Path, requirements: &str) -> bool {
    venv_python(venv).exists()
        && std::fs::read_to_string(venv.join(STAMP)).is_ok_and(|s| s == requirements)
}

fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: cannot run {:?}: {e}", cmd.get_program()))?;
    if out.status.success() {
        return Ok(());
    }
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let last = lines[lines.len().saturating_sub(3)..].join(" | ");
    Err(format!("{what} failed ({}): {last}", out.status))
}

/// Makes sure `venv` holds an environment built from `requirements_file`,
/// building it when missing or stale (`python3 -m venv`, `pip install -r`).
/// Returns its interpreter, or why there is none. `say` gets a line for the
/// user before the slow part.
pub fn ensure_venv(
    venv: &Path,
    requirements_file: &Path,
    say: &dyn Fn(&str),
) -> Result<PathBuf, String> {
    let requirements = std::fs::read_to_string(requirements_file)
        .map_err(|e| format!("cannot read {}: {e}", requirements_file.display()))?;
    if is_ready(venv, &requirements) {
        return Ok(venv_python(venv));
    }
    let parent = venv
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = venv
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| ".venv".into());
    std::fs::create_dir_all(parent)
        .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    let tmp = parent.join(format!("{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    say(&format!(
        "making the Python environment of the peers: {} (python3 -m venv; pip install -r {})",
        venv.display(),
        requirements_file.display()
    ));
    let built = (|| {
        run(
            Command::new("python3").arg("-m").arg("venv").arg(&tmp),
            "python3 -m venv",
        )?;
        run(
            Command::new(venv_python(&tmp))
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "--retries",
                    "2",
                    "--timeout",
                    "30",
                    "-r",
                ])
                .arg(requirements_file),
            "pip install",
        )?;
        std::fs::write(tmp.join(STAMP), &requirements)
            .map_err(|e| format!("cannot write {}: {e}", tmp.join(STAMP).display()))
    })();
    if let Err(e) = built {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    // Swap it in; another harness may have been quicker.
    let old = parent.join(format!("{name}.old-{}", std::process::id()));
    if venv.exists() {
        if is_ready(venv, &requirements) {
            let _ = std::fs::remove_dir_all(&tmp);
            return Ok(venv_python(venv));
        }
        let _ = std::fs::rename(venv, &old);
    }
    let moved = std::fs::rename(&tmp, venv);
    let _ = std::fs::remove_dir_all(&old);
    match moved {
        Ok(()) => Ok(venv_python(venv)),
        Err(_) if is_ready(venv, &requirements) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(venv_python(venv))
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(format!(
                "cannot move the environment into {}: {e}",
                venv.display()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stale_or_half_made_venv_is_not_ready() {
        let dir = tempfile::tempdir().unwrap();
        let venv = dir.path().join(".venv");
        assert!(!is_ready(&venv, "duckdb==1\n"));
        std::fs::create_dir_all(venv_python(&venv).parent().unwrap()).unwrap();
        std::fs::write(venv_python(&venv), "").unwrap();
        // no stamp: pip never finished
        assert!(!is_ready(&venv, "duckdb==1\n"));
        std::fs::write(venv.join(STAMP), "duckdb==1\n").unwrap();
        assert!(is_ready(&venv, "duckdb==1\n"));
        assert!(!is_ready(&venv, "duckdb==2\n"));
    }

    #[test]
    fn missing_requirements_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = ensure_venv(
            &dir.path().join(".venv"),
            &dir.path().join("requirements.txt"),
            &|_| {},
        )
        .unwrap_err();
        assert!(err.contains("cannot read"), "{err}");
        assert!(!dir.path().join(".venv").exists());
    }
}
