//! The ASA life-cycle tests' fixture: an acceptor with no keys of its own, fed by a running
//! keytab watcher as `kedge run` feeds it, and the few checks every such test makes (which key
//! version accepted a token, waiting for the watcher).

use std::path::Path;
use std::process::Output;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use kedge::asa::{KeytabWatcher, WatchConfig};
use kedge::krb::acceptor::{AcceptCtx, Acceptor, AcceptorConfig};
use kedge::krb::keyset::KeySet;
use kedge::krb::replay::ReplayCache;

/// An acceptor and the watcher that loads `keytab` into it.
pub struct Watched {
    /// The acceptor, with whatever keys the watcher loaded.
    pub acceptor: Arc<Acceptor>,
    /// The watcher (polling every `poll`, a replaced key kept for an hour).
    pub watcher: KeytabWatcher,
}

/// Starts a watcher on `keytab` (call inside a tokio runtime); it has loaded the file once
/// when this returns. `replay_capacity`: the acceptor's replay cache size.
pub fn watch_keytab(keytab: &Path, poll: Duration, replay_capacity: usize) -> Watched {
    let acceptor = Arc::new(Acceptor::new(
        AcceptorConfig::default(),
        KeySet::default(),
        Arc::new(ReplayCache::new(replay_capacity)),
    ));
    let watcher = KeytabWatcher::start(
        WatchConfig {
            path: keytab.to_path_buf(),
            previous_key_retire: Duration::from_secs(3600),
            poll_interval: poll,
        },
        acceptor.clone(),
    )
    .unwrap();
    Watched { acceptor, watcher }
}

/// What validating an `HTTP/` token now asks: no channel binding, no group rule, replays
/// checked.
pub fn http_ctx() -> AcceptCtx<'static> {
    AcceptCtx {
        now: SystemTime::now(),
        service: "HTTP",
        channel_binding: None,
        groups: None,
        check_replay: true,
    }
}

/// The key version that accepted `token`, or why it was refused.
pub fn accepted_kvno(a: &Acceptor, token: &[u8]) -> Result<u32, String> {
    a.accept(token, &http_ctx())
        .map(|ok| ok.kvno)
        .map_err(|e| e.to_string())
}

/// Polls `f` every 20 ms until it holds; fails the test naming `what` after 10 s.
pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A finished command's standard output, then its standard error.
pub fn output_text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr)
}
