//! Real GSS-API tokens from MIT's library through python3-gssapi (`gss_client.py`), and MIT's
//! own acceptor as the reference every harness token is checked against.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use super::kdc::{run_with_stdin, Ccache, Kdc};

/// Debian's interpreter: the one with python3-gssapi and python3-impacket.
pub const PYTHON: &str = "/usr/bin/python3";
/// The GSS client script.
pub const GSS_CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/gss_client.py");

/// The mechanism an initiator asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mech {
    /// SPNEGO (1.3.6.1.5.5.2): a NegTokenInit whose mechToken is a krb5 AP-REQ.
    Spnego,
    /// Raw RFC 4121 token under the krb5 OID 1.2.840.113554.1.2.2.
    Krb5,
    /// Raw RFC 4121 token under Microsoft's legacy OID 1.2.840.48018.1.2.2.
    MsKrb5,
}

impl Mech {
    fn arg(self) -> &'static str {
        match self {
            Mech::Spnego => "spnego",
            Mech::Krb5 => "krb5",
            Mech::MsKrb5 => "mskrb5",
        }
    }
}

/// What to ask the initiator for.
///
/// `spn` is a GSS host-based name (`HTTP@outlook.contoso.com`) or, with a `/`, a krb5 principal
/// (`exchangeMDB/outlook.contoso.com@KEDGE.TEST`). `flags` is a comma list of `mutual`,
/// `replay`, `sequence`, `conf`, `integ`, `deleg`, `dce`; `default` (python-gssapi's
/// mutual+sequence) or `none`. `channel_binding` is the application data of the GSS channel
/// bindings (e.g. `tls-server-end-point:<hash>`).
#[derive(Clone, Copy, Debug)]
pub struct TokenSpec<'a> {
    pub spn: &'a str,
    pub mech: Mech,
    pub flags: &'a str,
    pub channel_binding: Option<&'a [u8]>,
}

impl<'a> TokenSpec<'a> {
    pub fn new(spn: &'a str, mech: Mech) -> Self {
        TokenSpec {
            spn,
            mech,
            flags: "default",
            channel_binding: None,
        }
    }

    pub fn flags(mut self, flags: &'a str) -> Self {
        self.flags = flags;
        self
    }

    pub fn channel_binding(mut self, application_data: &'a [u8]) -> Self {
        self.channel_binding = Some(application_data);
        self
    }

    fn cb_arg(&self) -> String {
        self.channel_binding
            .map(hex::encode)
            .unwrap_or_else(|| "-".into())
    }

    fn flags_arg(&self) -> &str {
        if self.flags.is_empty() {
            "default"
        } else {
            self.flags
        }
    }
}

/// A token MIT's acceptor took.
#[derive(Clone, Debug)]
pub struct MitAccepted {
    /// False for DCE style (flag `dce`): the AP-REQ was valid and MIT answered with its AP-REP,
    /// but the context waits for the client's AP-REP (third leg); `initiator` and `mech` are
    /// then empty.
    pub complete: bool,
    /// The client principal, e.g. `alice@KEDGE.TEST`.
    pub initiator: String,
    /// The mech OID MIT settled on (dotted).
    pub mech: String,
    /// The reply token (AP-REP, in SPNEGO for SPNEGO), when MIT produced one.
    pub output_token: Option<Vec<u8>>,
}

/// The initiator's answer to a reply token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Context established; for SPNEGO there may be a last token (mechListMIC) to send.
    Complete(Option<Vec<u8>>),
    /// The initiator wants another round trip with this token.
    Continue(Vec<u8>),
}

fn python_gssapi() {
    static CHECKED: OnceLock<()> = OnceLock::new();
    CHECKED.get_or_init(|| {
        let ok = Command::new(PYTHON)
            .args(["-c", "import gssapi"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        assert!(
            ok,
            "{PYTHON} cannot `import gssapi` (Debian package `python3-gssapi`; note the python3 \
             first on PATH may not be Debian's). Run `scripts/test`, which installs it."
        );
    });
}

/// The GSS flags Microsoft RPC asks for (mutual, DCE style, confidentiality, integrity,
/// sequence, replay: 0x103e), as `TokenSpec::flags` spells them.
pub const DCE_FLAGS: &str = "mutual,dce,conf,integ,sequence,replay";

impl Kdc {
    /// `n` initial context tokens for `spn`, each from a fresh context (distinct authenticator),
    /// from a fresh TGT of `user`, with python-gssapi's default flags (mutual, sequence).
    pub fn tokens(&self, user: &str, spn: &str, mech: Mech, n: usize) -> Vec<Vec<u8>> {
        self.tokens_for(user, &TokenSpec::new(spn, mech), n)
    }

    /// `n` initial context tokens as `spec` describes.
    pub fn tokens_for(&self, user: &str, spec: &TokenSpec<'_>, n: usize) -> Vec<Vec<u8>> {
        python_gssapi();
        let cc = self.kinit(user);
        let out = self
            .command(PYTHON)
            .env("KRB5CCNAME", cc.name())
            .arg(GSS_CLIENT)
            .args([
                "tokens",
                "--spn",
                spec.spn,
                "--mech",
                spec.mech.arg(),
                "--flags",
                spec.flags_arg(),
            ])
            .args(["--cb", &spec.cb_arg(), "--count", &n.to_string()])
            .output()
            .expect("run gss_client.py tokens");
        assert!(
            out.status.success(),
            "gss_client.py tokens {spec:?} as {user} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
        let tokens: Vec<Vec<u8>> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| B64.decode(l).expect("gss_client.py printed bad base64"))
            .collect();
        assert_eq!(
            tokens.len(),
            n,
            "gss_client.py printed {} tokens, wanted {n}",
            tokens.len()
        );
        tokens
    }

    /// `n` DCE-style krb5 tokens of `user` for `<service>/<array>`, as Microsoft RPC sends them
    /// with auth 16: bare AP-REQs (MIT drops the GSS frame for DCE style), flags
    /// [`DCE_FLAGS`] (0x103e).
    pub fn dce_tokens(&self, user: &str, service: &str, n: usize) -> Vec<Vec<u8>> {
        let spn = self.spn(service);
        let toks = self.tokens_for(user, &TokenSpec::new(&spn, Mech::Krb5).flags(DCE_FLAGS), n);
        assert!(
            toks.iter().all(|t| t[0] == 0x6e),
            "MIT sends DCE style as a bare AP-REQ"
        );
        toks
    }

    /// An interactive initiator for `user` (a python-gssapi process kept alive between steps).
    pub fn initiator(&self, user: &str) -> Initiator {
        python_gssapi();
        let cc = self.kinit(user);
        let mut child = self
            .command(PYTHON)
            .env("KRB5CCNAME", cc.name())
            .arg(GSS_CLIENT)
            .arg("interactive")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn gss_client.py interactive");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Initiator {
            child,
            stdin,
            stdout,
            ccache: cc,
        }
    }

    /// MIT's `gss_accept_sec_context` on one token with the ASA keytab and the realm's replay
    /// cache (shared by every call on this `Kdc`, like one real server).
    pub fn mit_accept(&self, token: &[u8]) -> Result<MitAccepted, String> {
        self.mit_accept_all(&[token]).pop().unwrap()
    }

    /// [`Kdc::mit_accept`] for many tokens, one acceptor process, a fresh context per token.
    pub fn mit_accept_all<T: AsRef<[u8]>>(&self, tokens: &[T]) -> Vec<Result<MitAccepted, String>> {
        self.mit_accept_with_keytab(&self.keytab_path(), tokens)
    }

    /// MIT's acceptor with another keytab (e.g. one exported before a kvno bump).
    pub fn mit_accept_with_keytab<T: AsRef<[u8]>>(
        &self,
        keytab: &Path,
        tokens: &[T],
    ) -> Vec<Result<MitAccepted, String>> {
        python_gssapi();
        let input: String = tokens.iter().map(|t| B64.encode(t) + "\n").collect();
        let out = run_with_stdin(
            self.command(PYTHON)
                .env("KRB5_KTNAME", format!("FILE:{}", keytab.display()))
                .arg(GSS_CLIENT)
                .arg("accept"),
            input.as_bytes(),
        );
        assert!(
            out.status.success(),
            "gss_client.py accept failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let results: Vec<_> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(parse_accept_line)
            .collect();
        assert_eq!(
            results.len(),
            tokens.len(),
            "gss_client.py accept answered a different number of lines"
        );
        results
    }
}

fn parse_accept_line(line: &str) -> Result<MitAccepted, String> {
    if let Some(msg) = line.strip_prefix("error: ") {
        return Err(msg.to_string());
    }
    let mut w = line.split(' ');
    match (w.next(), w.next(), w.next(), w.next()) {
        (Some("continue"), Some(out), None, None) => Ok(MitAccepted {
            complete: false,
            initiator: String::new(),
            mech: String::new(),
            output_token: (out != "-").then(|| B64.decode(out).expect("bad base64 from acceptor")),
        }),
        (Some("ok"), Some(initiator), Some(mech), Some(out)) => Ok(MitAccepted {
            complete: true,
            initiator: initiator.to_string(),
            mech: mech.to_string(),
            output_token: (out != "-").then(|| B64.decode(out).expect("bad base64 from acceptor")),
        }),
        _ => Err(format!("unexpected acceptor line: {line}")),
    }
}

/// A live python-gssapi initiator: `init` makes a fresh context and returns its first token,
/// `step` feeds the acceptor's reply (e.g. kedge's AP-REP) to that same context.
pub struct Initiator {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    ccache: Ccache,
}

impl Initiator {
    /// First token of a fresh context for `spn`; panics if the initiator fails.
    pub fn init(&mut self, spn: &str, mech: Mech, flags: &str) -> Vec<u8> {
        self.try_init(&TokenSpec::new(spn, mech).flags(flags))
            .unwrap_or_else(|e| panic!("initiator init {spn} {mech:?} {flags}: {e}"))
    }

    /// First token of a fresh context as `spec` says.
    pub fn try_init(&mut self, spec: &TokenSpec<'_>) -> Result<Vec<u8>, String> {
        let reply = self.call(&format!(
            "init {} {} {} {}",
            spec.spn,
            spec.mech.arg(),
            spec.flags_arg(),
            spec.cb_arg()
        ))?;
        let b64 = reply
            .strip_prefix("token ")
            .ok_or_else(|| format!("unexpected reply: {reply}"))?;
        Ok(B64.decode(b64).expect("bad base64 from initiator"))
    }

    /// Feeds the acceptor's reply token; `Ok(())` once the initiator considers the context
    /// established (mutual auth verified), `Err` with MIT's message otherwise.
    pub fn step(&mut self, reply: &[u8]) -> Result<(), String> {
        match self.step_full(reply)? {
            Step::Complete(_) => Ok(()),
            Step::Continue(t) => Err(format!(
                "initiator wants another round trip ({} byte token)",
                t.len()
            )),
        }
    }

    /// Like [`Initiator::step`], with the initiator's next token if it has one.
    pub fn step_full(&mut self, reply: &[u8]) -> Result<Step, String> {
        let line = self.call(&format!("step {}", B64.encode(reply)))?;
        let decode = |s: &str| B64.decode(s).expect("bad base64 from initiator");
        if line == "complete" {
            Ok(Step::Complete(None))
        } else if let Some(t) = line.strip_prefix("complete ") {
            Ok(Step::Complete(Some(decode(t))))
        } else if let Some(t) = line.strip_prefix("continue ") {
            Ok(Step::Continue(decode(t)))
        } else {
            Err(format!("unexpected reply: {line}"))
        }
    }

    /// The ccache the initiator uses.
    pub fn ccache(&self) -> &Ccache {
        &self.ccache
    }

    fn call(&mut self, line: &str) -> Result<String, String> {
        let stdin = self.stdin.as_mut().expect("initiator closed");
        writeln!(stdin, "{line}")
            .and_then(|_| stdin.flush())
            .map_err(|e| format!("initiator gone: {e}"))?;
        let mut reply = String::new();
        self.stdout
            .read_line(&mut reply)
            .map_err(|e| format!("initiator gone: {e}"))?;
        let reply = reply.trim_end().to_string();
        if reply.is_empty() {
            return Err("initiator exited".into());
        }
        match reply.strip_prefix("error: ") {
            Some(msg) => Err(msg.to_string()),
            None => Ok(reply),
        }
    }
}

impl Drop for Initiator {
    fn drop(&mut self) {
        drop(self.stdin.take()); // EOF ends the script's loop
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
