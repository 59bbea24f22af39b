//! The Node.js comparators' setup: checks that `node` (18 or later) runs and installs the
//! pinned packages of `bench/node` (`npm ci`, from `package-lock.json`) when `node_modules` is
//! missing or older than the lock file. A missing `node` or `npm`, or a failed install, is an
//! error naming what to install: a comparator is never skipped silently.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// The packages the comparator scripts import.
pub const PACKAGES: [&str; 2] = ["ws", "socket.io"];

/// The oldest Node.js major version the scripts run on.
pub const MIN_NODE_MAJOR: u32 = 18;

/// How long to wait for another harness's `npm ci` in the same directory.
const INSTALL_WAIT: Duration = Duration::from_secs(300);

const INSTALL_HINT: &str = "the node-ws and socketio targets need Node.js (18 or later) and npm, \
e.g. `apt-get install nodejs npm`; or leave them out with --targets";

/// The `node` major version, or why `node` cannot run.
pub fn node_major(node: &Path) -> Result<u32, String> {
    let out = Command::new(node)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `{}` ({e}): {INSTALL_HINT}", node.display()))?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    version
        .strip_prefix('v')
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.parse().ok())
        .filter(|_| out.status.success())
        .ok_or_else(|| format!("`{} --version` printed {version:?}: {INSTALL_HINT}", node.display()))
}

/// `npm` beside `node` when there is one (a Node.js installed by hand), else `npm` on `PATH`.
fn npm_for(node: &Path) -> PathBuf {
    node.parent()
        .map(|dir| dir.join("npm"))
        .filter(|npm| npm.is_file())
        .unwrap_or_else(|| PathBuf::from("npm"))
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Whether `node_modules` lacks a package or predates `package-lock.json`.
pub fn needs_install(node_dir: &Path) -> bool {
    let modules = node_dir.join("node_modules");
    if PACKAGES.iter().any(|p| !modules.join(p).join("package.json").is_file()) {
        return true;
    }
    // npm writes node_modules/.package-lock.json on every install
    match (
        modified(&node_dir.join("package-lock.json")),
        modified(&modules.join(".package-lock.json")),
    ) {
        (Some(lock), Some(installed)) => lock > installed,
        _ => true,
    }
}

/// Checks `node` and installs the comparators' packages in `node_dir` when needed.
pub fn prepare(node: &Path, node_dir: &Path, verbose: bool) -> Result<(), String> {
    let major = node_major(node)?;
    if major < MIN_NODE_MAJOR {
        return Err(format!("Node.js {major} found at `{}`: {INSTALL_HINT}", node.display()));
    }
    for file in [
        "package.json",
        "package-lock.json",
        "ws-server.mjs",
        "socketio-server.mjs",
    ] {
        if !node_dir.join(file).is_file() {
            return Err(format!(
                "{} is missing: the Node.js comparators live in bench/node (pass --node-dir)",
                node_dir.join(file).display()
            ));
        }
    }
    if !needs_install(node_dir) {
        return Ok(());
    }
    // one install at a time in this directory (a directory is created atomically)
    let lock = node_dir.join(".npm-ci.lock");
    let started = Instant::now();
    while std::fs::create_dir(&lock).is_err() {
        if started.elapsed() > INSTALL_WAIT {
            return Err(format!(
                "{} still exists after {} s: another `npm ci` is running there or died (remove the directory)",
                lock.display(),
                INSTALL_WAIT.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let result = if needs_install(node_dir) {
        install(node, node_dir, verbose)
    } else {
        Ok(()) // the other harness installed them
    };
    let _ = std::fs::remove_dir(&lock);
    result?;
    if needs_install(node_dir) {
        return Err(format!(
            "`npm ci` in {} finished but {} are still not installed",
            node_dir.display(),
            PACKAGES.join(" and ")
        ));
    }
    Ok(())
}

fn install(node: &Path, node_dir: &Path, verbose: bool) -> Result<(), String> {
    let npm = npm_for(node);
    if verbose {
        eprintln!(
            "switchboard-bench: installing the Node.js comparators ({}) in {}",
            PACKAGES.join(", "),
            node_dir.display()
        );
    }
    let out = Command::new(&npm)
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(node_dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `{} ci` ({e}): {INSTALL_HINT}", npm.display()))?;
    if out.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    let tail: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).take(12).collect();
    Err(format!(
        "`npm ci` in {} failed ({}): {}",
        node_dir.display(),
        out.status,
        tail.join(" | ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_node_is_an_error() {
        let e = node_major(Path::new("/nonexistent/node")).unwrap_err();
        assert!(e.contains("Node.js") && e.contains("--targets"), "{e}");
        let e = prepare(Path::new("/nonexistent/node"), Path::new("/nonexistent"), false).unwrap_err();
        assert!(e.contains("cannot run"), "{e}");
    }

    #[test]
    fn an_empty_directory_needs_an_install() {
        let dir = std::env::temp_dir().join(format!("switchboard-bench-node-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(needs_install(&dir));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
