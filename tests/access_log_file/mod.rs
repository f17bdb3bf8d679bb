//! An access log written to a file of the test's own, read back as JSON lines.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kedge::observe::access_log::{AccessLog, AccessLogConfig, AccessLogFormat};
use serde_json::Value;

/// A running access log and its file.
pub struct AccessLogFile {
    /// The log, to hand to an edge context.
    pub log: Arc<AccessLog>,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl AccessLogFile {
    /// A JSON access log logging every success.
    pub fn json() -> Self {
        Self::sampled(1.0)
    }

    /// A JSON access log logging a share `sample` of successes.
    pub fn sampled(sample: f64) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("access.log");
        let cfg = AccessLogConfig {
            enabled: true,
            format: AccessLogFormat::Json,
            path: path.display().to_string(),
            sample_successes: sample,
            ..AccessLogConfig::default()
        };
        let log = AccessLog::start(&cfg).expect("open").expect("enabled");
        Self { log, path, _dir: dir }
    }

    /// The lines written so far, each parsed as JSON (a line that is not JSON fails the test).
    pub fn lines(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.path).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }

    /// Waits (at most 10 s, letting the test's own tasks run) until `n` lines are there, then
    /// a little longer to catch any extra line, and returns them all.
    pub async fn wait_for(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.lines().len() < n && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
        self.lines()
    }
}
