//! What /proc says about this machine and this process: load average, CPU count, CPU time
//! of the kedge threads.

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
