#!/usr/bin/python3
"""Baseline: MIT's own gss_accept_sec_context on the captured tokens of tests/testdata/mit.

    /usr/bin/python3 benches/mit_accept.py [--data tests/testdata/mit] [--files spnego.b64,...]

Accepts every token with the captured ASA keytab (KRB5_KTNAME), a fresh security context per
token, acceptor credentials acquired once (as a server does), and prints one line per replay
cache mode:

    mit_gss_accept: N tokens, X accepts/s (rcache=dfl ...)      MIT's default file rcache
    mit_gss_accept: N tokens, X accepts/s (rcache=none ...)     KRB5RCACHETYPE=none

Each mode runs in its own child process with its own empty KRB5RCACHEDIR, so no token is a
replay of a previous run. Every token must be accepted: failures are counted and printed, and
the exit status is 1 if there were any.

Time: the tokens were captured once (meta.json captured_at..captured_end) and their
authenticator ctimes are that old, which MIT rejects outside its clock skew (default 300 s,
KRB_AP_ERR_SKEW). The tickets themselves were issued for 10 years (ticket_endtime). So the
krb5.conf written here sets `clockskew` to reach back to the capture time; the work per token
is unchanged. Re-run scripts/capture-mit-tokens if the tickets ever expire.
"""

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA = os.path.join(HERE, "..", "tests", "testdata", "mit")
DEFAULT_FILES = "spnego.b64,krb5.b64,mdb.b64"


def load(data, files):
    tokens = []
    for name in files.split(","):
        with open(os.path.join(data, name)) as f:
            for n, line in enumerate(f, 1):
                line = line.strip()
                if line:
                    tokens.append(("%s:%d" % (name, n), base64.b64decode(line)))
    return tokens


def worker(args):
    """Runs in a child whose environment already selects the rcache; prints one JSON line."""
    import gssapi

    tokens = load(args.data, args.files)
    mechs = [
        gssapi.OID.from_int_seq("1.3.6.1.5.5.2"),
        gssapi.OID.from_int_seq("1.2.840.113554.1.2.2"),
        gssapi.OID.from_int_seq("1.2.840.48018.1.2.2"),
    ]
    creds = gssapi.Credentials(usage="accept", mechs=mechs)
    failures = []
    accepted = 0
    start = time.perf_counter()
    for where, token in tokens:
        try:
            ctx = gssapi.SecurityContext(creds=creds, usage="accept")
            ctx.step(token)
            if ctx.complete:
                accepted += 1
            else:
                failures.append((where, "context not complete after one token"))
        except gssapi.exceptions.GSSError as err:
            failures.append((where, " ".join(str(err).split())))
    elapsed = time.perf_counter() - start
    print(json.dumps({"n": len(tokens), "accepted": accepted, "elapsed": elapsed, "failures": failures}))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=DEFAULT_DATA)
    p.add_argument("--files", default=DEFAULT_FILES)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    args.data = os.path.abspath(args.data)
    try:
        import gssapi  # noqa: F401
    except ImportError:
        sys.exit("%s has no gssapi module: run this with /usr/bin/python3 (Debian python3-gssapi)"
                 % sys.executable)
    if args.worker:
        return worker(args)

    with open(os.path.join(args.data, "meta.json")) as f:
        meta = json.load(f)
    now = int(time.time())
    age = now - int(meta["captured_at"])
    skew = max(300, age + 300)
    if now > int(meta["ticket_endtime"]):
        print("warning: the captured tickets expired at %d; MIT accepts them only because of the "
              "widened clock skew. Re-run scripts/capture-mit-tokens." % meta["ticket_endtime"],
              file=sys.stderr)

    status = 0
    with tempfile.TemporaryDirectory(prefix="kedge-mit-accept-") as tmp:
        conf = os.path.join(tmp, "krb5.conf")
        with open(conf, "w") as f:
            f.write(
                "[libdefaults]\n"
                " default_realm = %s\n"
                " permitted_enctypes = aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96\n"
                " clockskew = %d\n"
                " dns_lookup_kdc = false\n"
                " dns_canonicalize_hostname = false\n"
                " rdns = false\n" % (meta["realm"], skew)
            )
        for rcache in ("dfl", "none"):
            rdir = os.path.join(tmp, "rcache-" + rcache)
            os.mkdir(rdir)
            env = dict(os.environ)
            for k in ("KRB5_CONFIG", "KRB5RCACHETYPE", "KRB5RCACHENAME", "KRB5_TRACE", "KRB5CCNAME"):
                env.pop(k, None)
            env.update(
                KRB5_CONFIG=conf,
                KRB5_KTNAME="FILE:" + os.path.join(args.data, meta.get("keytab", "asa.keytab")),
                KRB5RCACHEDIR=rdir,
            )
            if rcache == "none":
                env["KRB5RCACHETYPE"] = "none"
            out = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--worker", "--data", args.data, "--files", args.files],
                env=env, check=True, stdout=subprocess.PIPE, text=True,
            ).stdout
            r = json.loads(out.strip().splitlines()[-1])
            rate = r["accepted"] / r["elapsed"] if r["elapsed"] > 0 else 0.0
            print("mit_gss_accept: %d tokens, %.0f accepts/s (rcache=%s, %d failures, clockskew=%ds, %s)"
                  % (r["n"], rate, rcache, len(r["failures"]), skew, args.files))
            for where, msg in r["failures"][:20]:
                print("  FAIL %s: %s" % (where, msg))
            if len(r["failures"]) > 20:
                print("  ... and %d more failures" % (len(r["failures"]) - 20))
            if r["failures"]:
                status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
