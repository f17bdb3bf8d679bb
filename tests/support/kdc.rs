//! A throwaway MIT Kerberos realm: `kdb5_util` + `kadmin.local` + `krb5kdc -n` (and optionally
//! `kadmind -nofork`) on free loopback ports, configured only through files in a temp directory.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use super::daemon::{free_port, Daemon};

/// The test realm.
pub const REALM: &str = "KEDGE.TEST";
/// The CAS array name every ASA SPN is registered on.
pub const ARRAY_FQDN: &str = "outlook.contoso.com";
/// Service classes of the ASA SPNs (`<service>/outlook.contoso.com@KEDGE.TEST`). MIT is
/// case-sensitive, so both `http` and `HTTP` exist (curl and python-gssapi ask for `HTTP`).
/// They start with random keys, kvno 1, like an AD machine account; use
/// [`Kdc::set_password`] for password-derived keys (MIT salt: realm + name components).
pub const ASA_SERVICES: [&str; 5] = ["http", "HTTP", "exchangeMDB", "exchangeRFR", "exchangeAB"];
/// Users created in every realm, with their initial passwords.
pub const USERS: [(&str, &str); 2] = [("alice", "Alice-Pa55w0rd"), ("bob", "Bob-Pa55w0rd")];
/// Users with UTF-8 names, created in every realm: each name holds bytes in 0x80..=0xA0
/// (`ß` is C3 9F; `р` D1 80, `я` D1 8F), which a GeneralString decoder with rasn's alphabet
/// refuses. MIT stores and issues names as the bytes given, as AD issues UTF-8.
pub const UTF8_USERS: [(&str, &str); 2] = [("weiß", "Weiss-Pa55w0rd"), ("рябов", "Ryabov-Pa55w0rd")];
/// `admin/admin` may do anything through kadmind (kadm5.acl `*/admin@KEDGE.TEST *`).
pub const ADMIN: (&str, &str) = ("admin/admin", "Admin-Pa55w0rd");
/// Key types of every principal the harness creates.
pub const ENCTYPES: &str = "aes256-cts-hmac-sha1-96:normal,aes128-cts-hmac-sha1-96:normal";

const MASTER_PASSWORD: &str = "kedge-test-master-key";
const SUPPORT_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support");
const INSTALL_HINT: &str = "The kedge tests need a real MIT Kerberos KDC and GSS clients: run \
     `scripts/test` (it installs krb5-kdc krb5-admin-server krb5-user python3-gssapi \
     python3-impacket curl redis-server with apt-get and then runs cargo test)";

/// How a new principal gets its keys.
#[derive(Clone, Copy, Debug)]
pub enum Secret<'a> {
    /// Keys derived from this password (MIT normal salt); `kinit` uses it.
    Password(&'a str),
    /// Random keys; `kinit` goes through an exported keytab.
    Random,
}

/// A credential cache holding a fresh TGT (and, after use, service tickets).
#[derive(Clone, Debug)]
pub struct Ccache {
    /// The cache file.
    pub path: PathBuf,
    /// Its client principal, realm included.
    pub principal: String,
}

impl Ccache {
    /// The value for `KRB5CCNAME`.
    pub fn name(&self) -> String {
        format!("FILE:{}", self.path.display())
    }
}

/// One MIT KDC (optionally with kadmind) serving realm `KEDGE.TEST` on loopback.
/// Dropping it kills its processes and removes its directory.
pub struct Kdc {
    // Field order is drop order: daemons die before their directory goes.
    kadmind: Option<Daemon>,
    kdc: Daemon,
    ports: Ports,
    passwords: Mutex<HashMap<String, String>>,
    counter: AtomicU64,
    dir: tempfile::TempDir,
}

#[derive(Clone, Copy, Debug)]
struct Ports {
    kdc: u16,
    kadmind: u16,
    kpasswd: u16,
}

impl Kdc {
    /// Starts a fresh realm with users alice and bob (and the [`UTF8_USERS`]), the five ASA SPNs on
    /// `outlook.contoso.com`, and the ASA keytab at [`Kdc::keytab_path`].
    pub fn start() -> Kdc {
        Self::start_opts(false, false)
    }

    /// Like [`Kdc::start`], plus `kadmind` with its kadmin and kpasswd (RFC 3244) ports.
    pub fn start_with_kadmind() -> Kdc {
        Self::start_opts(true, false)
    }

    /// One realm per test process, for tests that only need tokens. Never mutate it
    /// (no `randkey`, no password changes): other tests share it. Its processes die with the
    /// test process.
    pub fn shared() -> &'static Kdc {
        static SHARED: OnceLock<Kdc> = OnceLock::new();
        SHARED.get_or_init(|| Self::start_opts(false, true))
    }

    fn start_opts(with_kadmind: bool, remove_dir_on_exit: bool) -> Kdc {
        let mut last_error = String::new();
        for _ in 0..5 {
            match Self::try_start(with_kadmind, remove_dir_on_exit) {
                Ok(kdc) => return kdc,
                // Another process took a port between our probe and the daemon's bind.
                Err(e) if e.contains("Address already in use") => last_error = e,
                Err(e) => panic!("{e}"),
            }
        }
        panic!("could not start the MIT KDC after 5 attempts: {last_error}")
    }

    fn try_start(with_kadmind: bool, remove_dir_on_exit: bool) -> Result<Kdc, String> {
        let krb5kdc = tool("krb5kdc", "krb5-kdc");
        let kdb5_util = tool("kdb5_util", "krb5-kdc");
        tool("kadmin.local", "krb5-kdc");
        tool("kinit", "krb5-user");
        let kadmind = with_kadmind.then(|| tool("kadmind", "krb5-admin-server"));

        let dir = tempfile::Builder::new()
            .prefix("kedge-kdc-")
            .tempdir()
            .expect("create temp dir for the KDC");
        for sub in ["db", "ccache", "rcache", "keytabs"] {
            fs::create_dir(dir.path().join(sub)).expect("create KDC subdir");
        }
        let (kdc_sockets, kdc_port) = free_port(true);
        let (kadmind_sockets, kadmind_port) = free_port(false);
        let (kpasswd_sockets, kpasswd_port) = free_port(true);
        let ports = Ports {
            kdc: kdc_port,
            kadmind: kadmind_port,
            kpasswd: kpasswd_port,
        };
        write_config(dir.path(), REALM, ports, "1d", "7d");

        let mut kdc = Kdc {
            kadmind: None,
            kdc: Daemon::placeholder(),
            ports,
            passwords: Mutex::new(HashMap::new()),
            counter: AtomicU64::new(0),
            dir,
        };
        kdc.run_checked(Command::new(&kdb5_util).args(["create", "-s", "-P", MASTER_PASSWORD, "-r", REALM]))?;

        kdc.create_principals()?;
        drop(kdc_sockets);
        let rmdir = if remove_dir_on_exit {
            Some(kdc.dir.path())
        } else {
            None
        };
        kdc.kdc = Daemon::spawn(
            "krb5kdc",
            kdc.command(&krb5kdc).args(["-n", "-r", REALM]),
            kdc.dir.path(),
            rmdir,
        );
        kdc.kdc.wait_listening(&[kdc_port], kdc.dir.path())?;

        drop(kadmind_sockets);
        drop(kpasswd_sockets);
        if let Some(kadmind) = kadmind {
            let mut daemon = Daemon::spawn(
                "kadmind",
                kdc.command(&kadmind).args(["-nofork", "-W", "-r", REALM]),
                kdc.dir.path(),
                None,
            );
            daemon.wait_listening(&[kadmind_port, kpasswd_port], kdc.dir.path())?;
            kdc.kadmind = Some(daemon);
        }
        Ok(kdc)
    }

    fn create_principals(&self) -> Result<(), String> {
        let mut script = Vec::new();
        let mut passwords = self.passwords.lock().unwrap();
        for (user, pw) in USERS.iter().chain(&UTF8_USERS).copied().chain([ADMIN]) {
            script.push(format!("addprinc -pw {pw} -e {ENCTYPES} {user}"));
            passwords.insert(user.to_string(), pw.to_string());
        }
        let spns = self.asa_principals();
        drop(passwords);
        for spn in &spns {
            // Random keys: a password costs ~12 ms of PBKDF2 per principal at start.
            script.push(format!("addprinc -randkey -e {ENCTYPES} {spn}"));
        }
        script.push(format!(
            "ktadd -norandkey -k {} {}",
            self.keytab_path().display(),
            spns.join(" ")
        ));
        self.kadmin_local_script(&script)?;
        Ok(())
    }

    /// The realm name.
    pub fn realm(&self) -> &'static str {
        REALM
    }

    /// The KDC's port on 127.0.0.1 (TCP and UDP).
    pub fn port(&self) -> u16 {
        self.ports.kdc
    }

    /// The KDC's address (TCP and UDP).
    pub fn kdc_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports.kdc))
    }

    /// kadmind's kpasswd (RFC 3244) address, TCP and UDP. Panics without kadmind.
    pub fn kpasswd_addr(&self) -> SocketAddr {
        assert!(
            self.kadmind.is_some(),
            "kpasswd_addr needs Kdc::start_with_kadmind()"
        );
        SocketAddr::from(([127, 0, 0, 1], self.ports.kpasswd))
    }

    /// kadmind's kadmin RPC address (TCP). Panics without kadmind.
    pub fn kadmind_addr(&self) -> SocketAddr {
        assert!(
            self.kadmind.is_some(),
            "kadmind_addr needs Kdc::start_with_kadmind()"
        );
        SocketAddr::from(([127, 0, 0, 1], self.ports.kadmind))
    }

    /// The realm's private directory (config, database, logs, caches).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The ASA keytab: all five SPNs, aes256 + aes128, as exported at start.
    pub fn keytab_path(&self) -> PathBuf {
        self.dir().join("asa.keytab")
    }

    /// `krb5.conf` of the realm (also in [`Kdc::env`] as `KRB5_CONFIG`).
    pub fn krb5_conf(&self) -> PathBuf {
        self.dir().join("krb5.conf")
    }

    /// `<service>/outlook.contoso.com@KEDGE.TEST`.
    pub fn spn(&self, service: &str) -> String {
        format!("{service}/{ARRAY_FQDN}@{REALM}")
    }

    /// The five ASA SPN principals, realm included.
    pub fn asa_principals(&self) -> Vec<String> {
        ASA_SERVICES.iter().map(|s| self.spn(s)).collect()
    }

    /// Environment every child process needs: realm config, KDC profile, a private replay
    /// cache directory, the ASA keytab as default acceptor keytab, and a private default ccache.
    pub fn env(&self) -> Vec<(String, String)> {
        let d = self.dir();
        vec![
            ("KRB5_CONFIG".into(), d.join("krb5.conf").display().to_string()),
            (
                "KRB5_KDC_PROFILE".into(),
                d.join("kdc.conf").display().to_string(),
            ),
            ("KRB5RCACHEDIR".into(), d.join("rcache").display().to_string()),
            (
                "KRB5_KTNAME".into(),
                format!("FILE:{}", self.keytab_path().display()),
            ),
            (
                "KRB5_CLIENT_KTNAME".into(),
                format!("FILE:{}", d.join("keytabs/client.keytab").display()),
            ),
            (
                "KRB5CCNAME".into(),
                format!("FILE:{}", d.join("ccache/default").display()),
            ),
        ]
    }

    /// A `Command` with [`Kdc::env`] applied.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.envs(self.env());
        cmd
    }

    /// Runs `kadmin.local -q <query>` and returns its stdout; errors on any kadmin error line.
    pub fn kadmin_local(&self, query: &str) -> String {
        self.kadmin_local_script(&[query.to_string()])
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn kadmin_local_script(&self, lines: &[String]) -> Result<String, String> {
        let mut child = self
            .command(tool("kadmin.local", "krb5-kdc"))
            .args(["-r", REALM])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawn kadmin.local: {e}"))?;
        let mut stdin = child.stdin.take().unwrap();
        for line in lines {
            writeln!(stdin, "{line}").unwrap();
        }
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        // kadmin.local exits 0 even when a command fails; its errors go to stderr.
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with("No policy specified"))
            .collect();
        if !out.status.success() || !errors.is_empty() {
            return Err(format!("kadmin.local {lines:?} failed: {}", errors.join("\n")));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Adds a principal (`name` without realm, e.g. `carol` or `HTTP/other.contoso.com`) with
    /// aes256 + aes128 keys.
    pub fn add_principal(&self, name: &str, secret: Secret<'_>) {
        let name = strip_realm(name);
        match secret {
            Secret::Password(pw) => {
                self.kadmin_local(&format!("addprinc -pw {pw} -e {ENCTYPES} {name}"));
                self.remember_password(name, pw);
            }
            Secret::Random => {
                self.kadmin_local(&format!("addprinc -randkey -e {ENCTYPES} {name}"));
            }
        }
    }

    /// New random keys for `principal` (kvno + 1, old keys discarded); returns the new kvno.
    /// Export a keytab before and after to hold kvno N and N+1.
    pub fn randkey(&self, principal: &str) -> u32 {
        let name = strip_realm(principal);
        self.kadmin_local(&format!("cpw -randkey -e {ENCTYPES} {name}"));
        self.passwords.lock().unwrap().remove(name);
        self.kvno_of(name)
    }

    /// Like [`Kdc::randkey`] but the KDC keeps the old keys too (`cpw -keepold`).
    pub fn randkey_keepold(&self, principal: &str) -> u32 {
        let name = strip_realm(principal);
        self.kadmin_local(&format!("cpw -randkey -keepold -e {ENCTYPES} {name}"));
        self.passwords.lock().unwrap().remove(name);
        self.kvno_of(name)
    }

    /// Sets a password through kadmin.local (kvno + 1); returns the new kvno.
    pub fn set_password(&self, principal: &str, password: &str) -> u32 {
        let name = strip_realm(principal);
        self.kadmin_local(&format!("cpw -pw {password} -e {ENCTYPES} {name}"));
        self.remember_password(name, password);
        self.kvno_of(name)
    }

    /// The current key version number of `principal` in the KDC database.
    pub fn kvno_of(&self, principal: &str) -> u32 {
        let out = self.kadmin_local(&format!("getprinc {}", strip_realm(principal)));
        out.lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("Key: vno ")?
                    .split(',')
                    .next()?
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no kvno in getprinc output:\n{out}"))
    }

    /// Appends the current keys of `principals` to the keytab at `path` (`ktadd -norandkey`).
    pub fn export_keytab(&self, path: &Path, principals: &[&str]) {
        let names: Vec<&str> = principals.iter().map(|p| strip_realm(p)).collect();
        self.kadmin_local(&format!(
            "ktadd -norandkey -k {} {}",
            path.display(),
            names.join(" ")
        ));
    }

    /// The password the harness knows for `principal` (initial, or set through the harness).
    pub fn password(&self, principal: &str) -> Option<String> {
        self.passwords
            .lock()
            .unwrap()
            .get(strip_realm(principal))
            .cloned()
    }

    /// Tells the harness a password changed behind its back (e.g. through kpasswd).
    pub fn remember_password(&self, principal: &str, password: &str) {
        self.passwords
            .lock()
            .unwrap()
            .insert(strip_realm(principal).to_string(), password.to_string());
    }

    /// `kinit` for `user` into a new ccache of its own (never shared between calls, so parallel
    /// tests do not race on one file). Uses the known password, or an exported keytab.
    pub fn kinit(&self, user: &str) -> Ccache {
        let name = strip_realm(user);
        let principal = format!("{name}@{REALM}");
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let path = self
            .dir()
            .join("ccache")
            .join(format!("{}.{n}", name.replace('/', "_")));
        let mut cmd = self.command(tool("kinit", "krb5-user"));
        cmd.arg("-c").arg(format!("FILE:{}", path.display()));
        let password = self.password(name);
        if password.is_none() {
            let keytab = self
                .dir()
                .join("keytabs")
                .join(format!("{}.{n}.keytab", name.replace('/', "_")));
            self.export_keytab(&keytab, &[name]);
            cmd.arg("-k").arg("-t").arg(&keytab);
        }
        cmd.arg(&principal);
        let out = run_with_stdin(
            &mut cmd,
            password.map(|p| p + "\n").unwrap_or_default().as_bytes(),
        );
        if !out.status.success() {
            panic!(
                "kinit {principal} failed: {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                self.logs()
            );
        }
        Ccache { path, principal }
    }

    /// `kinit` then MIT `kvno <spn>`: a ccache that already holds the service ticket (impacket
    /// needs this, it would otherwise ask port 88 for a `host/` ticket).
    pub fn service_ticket(&self, user: &str, spn: &str) -> Ccache {
        let cc = self.kinit(user);
        let out = self
            .command(tool("kvno", "krb5-user"))
            .arg("-c")
            .arg(cc.name())
            .arg(spn)
            .output()
            .expect("run kvno");
        assert!(
            out.status.success(),
            "kvno {spn} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        cc
    }

    /// `curl --negotiate -u : --silent --show-error` with the realm env and a fresh ccache for
    /// `user`. curl asks for `HTTP@<URL host>`: use `http://outlook.contoso.com:<port>/` with
    /// `--resolve outlook.contoso.com:<port>:127.0.0.1`.
    pub fn curl_cmd(&self, user: &str) -> Command {
        let curl = curl_with_gss();
        let cc = self.kinit(user);
        let mut cmd = self.command(curl);
        cmd.env("KRB5CCNAME", cc.name())
            .args(["--negotiate", "-u", ":", "--silent", "--show-error"]);
        cmd
    }

    /// Process ids of the running daemons (krb5kdc, then kadmind if any).
    pub fn pids(&self) -> Vec<u32> {
        std::iter::once(&self.kdc)
            .chain(self.kadmind.as_ref())
            .map(|d| d.pid)
            .collect()
    }

    /// The KDC and kadmind logs, for failure messages.
    pub fn logs(&self) -> String {
        logs_in(self.dir())
    }

    fn run_checked(&self, cmd: &mut Command) -> Result<(), String> {
        let out = cmd
            .envs(self.env())
            .output()
            .map_err(|e| format!("spawn {cmd:?}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{cmd:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::Relaxed)
    }
}

/// Renders `krb5.conf` and `kdc.conf` (templates shared with scripts/capture-mit-tokens) and
/// `kadm5.acl` into `dir`.
fn write_config(dir: &Path, realm: &str, ports: Ports, max_life: &str, max_renew: &str) {
    for name in ["krb5.conf", "kdc.conf"] {
        let template = fs::read_to_string(format!("{SUPPORT_DIR}/{name}.in")).expect("read config template");
        let text = template
            .replace("@DIR@", &dir.display().to_string())
            .replace("@REALM@", realm)
            .replace("@KDC_PORT@", &ports.kdc.to_string())
            .replace("@KADMIND_PORT@", &ports.kadmind.to_string())
            .replace("@KPASSWD_PORT@", &ports.kpasswd.to_string())
            .replace("@MAX_LIFE@", max_life)
            .replace("@MAX_RENEW@", max_renew);
        fs::write(dir.join(name), text).expect("write config");
    }
    fs::write(dir.join("kadm5.acl"), format!("*/admin@{realm} *\n")).expect("write kadm5.acl");
}

pub(crate) fn logs_in(dir: &Path) -> String {
    let mut s = String::new();
    for f in [
        "krb5kdc.out",
        "kdc.log",
        "kadmind.out",
        "kadmind.log",
        "redis-server.out",
    ] {
        if let Ok(text) = fs::read_to_string(dir.join(f)) {
            s.push_str(&format!("--- {f}\n{text}"));
        }
    }
    s
}

fn strip_realm(name: &str) -> &str {
    name.strip_suffix(&format!("@{REALM}")[..]).unwrap_or(name)
}

/// Absolute path of an MIT tool; panics naming its Debian package when it is missing.
pub(crate) fn tool(name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let extra = [
        "/usr/sbin",
        "/sbin",
        "/usr/local/sbin",
        "/usr/bin",
        "/usr/local/bin",
    ]
    .map(PathBuf::from);
    std::env::split_paths(&path)
        .chain(extra)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("`{name}` not found (Debian package `{package}`). {INSTALL_HINT}"))
}

fn curl_with_gss() -> PathBuf {
    static CURL: OnceLock<PathBuf> = OnceLock::new();
    CURL.get_or_init(|| {
        let curl = tool("curl", "curl");
        let out = Command::new(&curl).arg("-V").output().expect("run curl -V");
        let v = String::from_utf8_lossy(&out.stdout);
        assert!(
            v.contains("GSS-API") && v.contains("SPNEGO"),
            "{} lacks GSS-API/SPNEGO support (curl -V: {v}). {INSTALL_HINT}",
            curl.display()
        );
        curl
    })
    .clone()
}

pub(crate) fn run_with_stdin(cmd: &mut Command, input: &[u8]) -> std::process::Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    // Write from a thread so a child that prints a lot before reading cannot deadlock us.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait for child");
    let _ = writer.join();
    out
}
