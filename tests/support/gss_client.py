#!/usr/bin/python3
"""Real MIT GSS-API initiator (and reference acceptor) for kedge's test harness.

Run with /usr/bin/python3 (Debian's python3-gssapi) and the harness environment
(KRB5_CONFIG, KRB5CCNAME, KRB5_KTNAME, KRB5RCACHEDIR). Every token comes from a
fresh security context, so every one carries a distinct authenticator.

Modes
  tokens --spn SPN [--mech spnego|krb5|mskrb5] [--flags LIST] [--cb HEX] [--count N]
      print N initial context tokens, base64, one per line.
  interactive
      read commands on stdin, one per line, answer one line each:
        init <spn> <mech> <flags> [cb-hex]  -> "token <b64>" | "error: <msg>"
        step <b64>                          -> "complete" | "complete <b64>" |
                                               "continue <b64>" | "error: <msg>"
        quit
  accept [--spn SPN]
      read base64 tokens on stdin, one per line; accept each in a fresh context
      with the keytab (KRB5_KTNAME) and answer one line each:
        "ok <initiator> <mech-oid> <b64 output token or ->" |
        "continue <b64 output token>" (DCE style: AP-REQ valid, third leg pending) |
        "error: <msg>"

SPN forms: "HTTP@outlook.contoso.com" is a GSS host-based service name;
"exchangeMDB/outlook.contoso.com@KEDGE.TEST" (anything with a '/') is a krb5
principal name.

Flags: comma-separated from mutual, replay, sequence, conf, integ, deleg,
dce; "default" is python-gssapi's default (mutual,sequence); "none" is 0.
"""

import argparse
import base64
import sys

import gssapi
import gssapi.raw

MECHS = {
    "spnego": gssapi.OID.from_int_seq("1.3.6.1.5.5.2"),
    "krb5": gssapi.OID.from_int_seq("1.2.840.113554.1.2.2"),
    # Microsoft's legacy (wrong) krb5 OID; MIT accepts and emits it too.
    "mskrb5": gssapi.OID.from_int_seq("1.2.840.48018.1.2.2"),
}

F = gssapi.RequirementFlag
FLAGS = {
    "mutual": F.mutual_authentication,
    "replay": F.replay_detection,
    "sequence": F.out_of_sequence_detection,
    "conf": F.confidentiality,
    "integ": F.integrity,
    "deleg": F.delegate_to_peer,
    "dce": F.dce_style,
}


def parse_name(spn):
    if "/" in spn or "@" not in spn:
        return gssapi.Name(spn, gssapi.NameType.kerberos_principal)
    return gssapi.Name(spn, gssapi.NameType.hostbased_service)


def parse_mech(mech):
    try:
        return MECHS[mech]
    except KeyError:
        raise ValueError("unknown mech %r (want one of %s)" % (mech, ", ".join(MECHS)))


def parse_flags(text):
    if text in ("", "default", "-"):
        return None
    if text == "none":
        return 0
    value = 0
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if part not in FLAGS:
            raise ValueError("unknown flag %r (want %s)" % (part, ", ".join(FLAGS)))
        value |= FLAGS[part]
    return value


def channel_bindings(cb_hex):
    if not cb_hex or cb_hex == "-":
        return None
    return gssapi.raw.ChannelBindings(application_data=bytes.fromhex(cb_hex))


def new_initiator(spn, mech, flags, cb_hex):
    oid = parse_mech(mech)
    kwargs = dict(name=parse_name(spn), mech=oid, usage="initiate")
    if mech == "mskrb5":
        # MIT's default credential does not cover the legacy OID; ask for it by name.
        kwargs["creds"] = gssapi.Credentials(usage="initiate", mechs=[oid])
    f = parse_flags(flags)
    if f is not None:
        kwargs["flags"] = f
    cb = channel_bindings(cb_hex)
    if cb is not None:
        kwargs["channel_bindings"] = cb
    return gssapi.SecurityContext(**kwargs)


def one_line(err):
    return " ".join(str(err).split())


def b64(data):
    return base64.b64encode(data).decode("ascii")


def cmd_tokens(args):
    out = sys.stdout
    for _ in range(args.count):
        ctx = new_initiator(args.spn, args.mech, args.flags, args.cb)
        out.write(b64(ctx.step()) + "\n")
    out.flush()


def cmd_interactive(_args):
    ctx = None
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        try:
            if words[0] == "quit":
                break
            elif words[0] == "init":
                if len(words) < 3:
                    raise ValueError("usage: init <spn> <mech> [flags] [cb-hex]")
                flags = words[3] if len(words) > 3 else "default"
                cb = words[4] if len(words) > 4 else None
                ctx = new_initiator(words[1], words[2], flags, cb)
                reply = "token " + b64(ctx.step())
            elif words[0] == "step":
                if ctx is None:
                    raise ValueError("step before init")
                token = base64.b64decode(words[1]) if len(words) > 1 else b""
                out = ctx.step(token)
                if ctx.complete:
                    reply = "complete" + (" " + b64(out) if out else "")
                else:
                    reply = "continue " + b64(out or b"")
            else:
                raise ValueError("unknown command %r" % words[0])
        except Exception as err:  # report every failure on the protocol line
            reply = "error: " + one_line(err)
        sys.stdout.write(reply + "\n")
        sys.stdout.flush()


def cmd_accept(args):
    # MIT's default acceptor credential does not take tokens under the legacy
    # Microsoft OID, so ask for every mech explicitly.
    name = parse_name(args.spn) if args.spn else None
    creds = gssapi.Credentials(name=name, usage="accept", mechs=list(MECHS.values()))
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            ctx = gssapi.SecurityContext(creds=creds, usage="accept")
            out = ctx.step(base64.b64decode(line))
            if not ctx.complete:
                # DCE style (3 legs): the AP-REQ checked out, MIT wants the client's AP-REP next.
                reply = "continue %s" % (b64(out) if out else "-")
                sys.stdout.write(reply + "\n")
                sys.stdout.flush()
                continue
            reply = "ok %s %s %s" % (
                ctx.initiator_name,
                ctx.mech.dotted_form if ctx.mech else "-",
                b64(out) if out else "-",
            )
        except Exception as err:
            reply = "error: " + one_line(err)
        sys.stdout.write(reply + "\n")
        sys.stdout.flush()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="mode", required=True)
    t = sub.add_parser("tokens")
    t.add_argument("--spn", required=True)
    t.add_argument("--mech", default="spnego", choices=sorted(MECHS))
    t.add_argument("--flags", default="default")
    t.add_argument("--cb", default=None, help="channel-binding application data, hex")
    t.add_argument("--count", type=int, default=1)
    sub.add_parser("interactive")
    a = sub.add_parser("accept")
    a.add_argument("--spn", default=None, help="acceptor name (default: any key in KRB5_KTNAME)")
    args = p.parse_args()
    try:
        {"tokens": cmd_tokens, "interactive": cmd_interactive, "accept": cmd_accept}[args.mode](args)
    except gssapi.exceptions.GSSError as err:
        sys.stderr.write("gss_client: %s\n" % one_line(err))
        sys.exit(2)


if __name__ == "__main__":
    main()
