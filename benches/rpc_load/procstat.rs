//! What /proc says about this machine and this process: load average, CPU count, CPU time
//! of the kedge threads, and what the hypervisor took of the machine's CPU.

use std::process::Command;

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// The threads of the kedge under test: its accept runtime and its per-core workers.
pub const KEDGE_THREADS: &[&str] = &["bench-binds", "kedge-worker"];

/// CPU seconds (user + system) spent so far by this process's threads whose name starts with
/// one of `prefixes` (from /proc/self/task/*/stat; clock ticks from `getconf CLK_TCK`).
pub fn thread_cpu_secs(prefixes: &[&str]) -> f64 {
    let tck: f64 = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0);
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter_map(|stat| {
            let open = stat.find('(')?;
            let close = stat.rfind(')')?;
            let name = &stat[open + 1..close];
            let f: Vec<&str> = stat[close + 2..].split(' ').collect();
            let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
            prefixes.iter().any(|p| name.starts_with(p)).then_some(ticks)
        })
        .sum::<f64>()
        / tck
}

pub fn num_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// The machine's CPU time so far and the part of it the hypervisor took (`steal`), in
/// /proc/stat ticks (zeros where /proc/stat cannot be read).
pub fn machine_ticks() -> (u64, u64) {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return (0, 0);
    };
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|x| x.parse().ok())
        .collect();
    (fields.iter().sum(), fields.get(7).copied().unwrap_or(0))
}

/// The share of the machine's CPU time, in percent, the hypervisor took between two
/// [`machine_ticks`] readings: a figure measured while it took more than a few percent is the
/// host's, not kedge's.
pub fn steal_pct(before: (u64, u64), after: (u64, u64)) -> f64 {
    let total = after.0.saturating_sub(before.0);
    if total == 0 {
        return 0.0;
    }
    100.0 * after.1.saturating_sub(before.1) as f64 / total as f64
}
