//! `[access_log]`: on or off, the format, where to, and how many successes.

use serde::{Deserialize, Serialize};

/// Line format.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AccessLogFormat {
    /// One flat JSON object per line (the default).
    #[default]
    Json,
    /// `key=value` fields, strings quoted and escaped.
    Text,
}

/// `[access_log]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLogConfig {
    /// Write the access log (default false).
    #[serde(default)]
    pub enabled: bool,
    /// `json` (default) or `text`.
    #[serde(default)]
    pub format: AccessLogFormat,
    /// `-` (default) for standard output, else a file, opened for append and reopened on
    /// SIGUSR1.
    #[serde(default = "default_path")]
    pub path: String,
    /// The share of successful requests and sessions logged, 0.0–1.0 (default 1.0). Refusals
    /// and errors are always logged.
    #[serde(default = "default_sample")]
    pub sample_successes: f64,
    /// Lines that may wait for the writer (default 65,536); beyond it lines are dropped and
    /// counted (`kedge_access_log_dropped_total`), never waited for.
    #[serde(default = "default_queue")]
    pub queue: usize,
}

fn default_path() -> String {
    "-".into()
}
fn default_sample() -> f64 {
    1.0
}
fn default_queue() -> usize {
    65_536
}

impl Default for AccessLogConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            format: AccessLogFormat::default(),
            path: default_path(),
            sample_successes: default_sample(),
            queue: default_queue(),
        }
    }
}

impl AccessLogConfig {
    /// Problems of the section, each with its path.
    pub fn validate(&self, problems: &mut Vec<String>) {
        let p = self.sample_successes;
        if !(0.0..=1.0).contains(&p) {
            problems.push(format!(
                "access_log.sample_successes: {p} is not between 0.0 and 1.0"
            ));
        }
        if !(1..=16_777_216).contains(&self.queue) {
            problems.push(format!(
                "access_log.queue: {} is not between 1 and 16777216",
                self.queue
            ));
        }
        if self.path.is_empty() {
            problems.push("access_log.path: empty (\"-\" for standard output)".into());
        }
    }

    /// What a start would find wrong with the file (`kedge run --check`), without creating it:
    /// an existing file must open for append, a new one needs its directory.
    pub fn check_file(&self) -> Result<(), String> {
        if !self.enabled || self.path == "-" {
            return Ok(());
        }
        let path = std::path::Path::new(&self.path);
        if path.exists() {
            return std::fs::OpenOptions::new()
                .append(true)
                .open(path)
                .map(drop)
                .map_err(|e| format!("access_log.path: {}: {e}", self.path));
        }
        match path.parent().filter(|d| !d.as_os_str().is_empty()) {
            Some(dir) if !dir.is_dir() => Err(format!(
                "access_log.path: {}: directory {} does not exist",
                self.path,
                dir.display()
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_check_names_a_missing_directory_and_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no/such/access.log");
        let cfg = AccessLogConfig {
            enabled: true,
            path: missing.display().to_string(),
            ..AccessLogConfig::default()
        };
        assert!(cfg.check_file().unwrap_err().contains("does not exist"));
        let fresh = AccessLogConfig {
            path: dir.path().join("access.log").display().to_string(),
            ..cfg
        };
        assert_eq!(fresh.check_file(), Ok(()));
        assert!(!dir.path().join("access.log").exists(), "nothing created");
    }
}
