//! Readings from `/proc`: CPU time and memory of a process, load average, TIME_WAIT sockets,
//! the open-files limit (and raising its soft value to the hard one).

use std::sync::OnceLock;

/// Clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`, 100 when unknown).
pub fn clock_ticks_per_second() -> u64 {
    static TCK: OnceLock<u64> = OnceLock::new();
    *TCK.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|&t| t > 0)
            .unwrap_or(100)
    })
}

/// User + system CPU time of a process (all its threads), in microseconds.
/// `pid` may be `"self"`.
pub fn cpu_micros(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // the command name may contain spaces and parentheses: fields start after the last ')'
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // after the name: state is field 3 of the full line, utime 14, stime 15
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) * 1_000_000 / clock_ticks_per_second())
}

/// A `kB` field of `/proc/<pid>/status` such as `VmRSS` or `VmHWM`.
pub fn status_kb(pid: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Resident set size in KiB.
pub fn rss_kb(pid: &str) -> Option<u64> {
    status_kb(pid, "VmRSS")
}

/// The 1-minute load average.
pub fn loadavg_1m() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// CPU time all CPUs spent busy (user, nice, system, irq, softirq, steal) since boot, in
/// microseconds, from the first line of `/proc/stat`.
pub fn busy_micros_all_cpus() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal
    let busy = v.first()? + v.get(1)? + v.get(2)? + v.get(5)? + v.get(6)? + v.get(7).copied().unwrap_or(0);
    Some(busy * 1_000_000 / clock_ticks_per_second())
}

/// Number of IPv4 TCP sockets in TIME_WAIT (state `06` in `/proc/net/tcp`).
pub fn time_wait_sockets() -> Option<u64> {
    let tcp = std::fs::read_to_string("/proc/net/tcp").ok()?;
    Some(
        tcp.lines()
            .skip(1)
            .filter(|l| l.split_whitespace().nth(3) == Some("06"))
            .count() as u64,
    )
}

/// The CPUs this process may run on (from `/proc/self/status`, `Cpus_allowed_list`).
pub fn allowed_cpus() -> Vec<u32> {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return Vec::new();
    };
    let Some(list) = status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")) else {
        return Vec::new();
    };
    let mut cpus = Vec::new();
    for part in list.trim().split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) {
                    cpus.extend(a..=b);
                }
            }
            None => cpus.extend(part.parse::<u32>().ok()),
        }
    }
    cpus
}

/// The soft and hard limits of open files of a process (`"self"` allowed), from
/// `/proc/<pid>/limits` (`unlimited` reads as `u64::MAX`).
pub fn open_files_limit(pid: &str) -> Option<(u64, u64)> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut values = line["Max open files".len()..].split_whitespace().map(|v| match v {
        "unlimited" => Some(u64::MAX),
        v => v.parse().ok(),
    });
    Some((values.next()??, values.next()??))
}

/// Raises this process's soft limit of open files to its hard limit (children started later
/// inherit it) with `prlimit` (util-linux), which needs no privilege for that; returns the soft
/// limit in force afterwards.
pub fn raise_open_files_limit() -> Option<u64> {
    let (soft, hard) = open_files_limit("self")?;
    if soft >= hard {
        return Some(soft);
    }
    let ceiling = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1 << 20);
    let target = hard.min(ceiling);
    let _ = std::process::Command::new("prlimit")
        .arg("--pid")
        .arg(std::process::id().to_string())
        .arg(format!("--nofile={target}:{hard}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    open_files_limit("self").map(|(soft, _)| soft)
}

/// Makes sure this process may hold `needed` open files, raising the soft limit to the hard one
/// when it is lower; an error names the limits when even that is not enough.
pub fn ensure_open_files(needed: u64) -> Result<(), String> {
    let Some((soft, hard)) = open_files_limit("self") else {
        return Ok(()); // no /proc: nothing known, let the connections tell
    };
    if soft >= needed {
        return Ok(());
    }
    let soft = raise_open_files_limit().unwrap_or(soft);
    if soft >= needed {
        return Ok(());
    }
    Err(format!(
        "{needed} open files needed but the limit is {soft} (hard limit {hard}; `ulimit -n`): \
         raise it or use fewer connections"
    ))
}

/// Open file descriptors of a process.
pub fn open_fds(pid: &str) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

/// Threads of a process.
pub fn threads(pid: &str) -> Option<u64> {
    status_kb(pid, "Threads")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_self() {
        assert!(cpu_micros("self").is_some());
        assert!(rss_kb("self").unwrap() > 0);
        assert!(loadavg_1m().is_some());
        assert!(busy_micros_all_cpus().unwrap() > 0);
        assert!(!allowed_cpus().is_empty());
        let (soft, hard) = open_files_limit("self").unwrap();
        assert!(soft > 0 && soft <= hard);
        assert!(ensure_open_files(soft).is_ok());
        if hard < u64::MAX {
            assert!(ensure_open_files(hard + 1).is_err());
        }
    }
}
