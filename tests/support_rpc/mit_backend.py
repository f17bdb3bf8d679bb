#!/usr/bin/python3
"""A CAS member stand-in for the RPC edge tests: completes the real 3-leg DCE-style Kerberos
handshake of an MS-RPC bind with MIT's acceptor (python3-gssapi, the ASA keytab in KRB5_KTNAME).

Listens on 127.0.0.1:0 and prints the port on the first stdout line. For each connection:
bind (auth 9 SPNEGO or auth 16 Kerberos) -> MIT accepts the AP-REQ -> bind_ack carrying the
AP-REP (in a SPNEGO NegTokenResp for auth 9) -> alter_context (auth 9) or auth3 (auth 16) with
the client's AP-REP -> MIT completes -> alter_context_resp (auth 9). It prints one JSON line per
connection: {"bind": <hex of the first PDU>, "initiator": ..., "complete": ..., "error": ...},
then echoes later bytes until EOF.

MIT refuses a GSS-wrapped token that claims DCE style, so the AP-REQ is unwrapped to its bare
form first. Run with KRB5RCACHETYPE=none (or a replay cache of its own): kedge and the members
keep separate replay caches, like separate CAS members.
"""
import json
import socket
import struct
import sys
import threading

import gssapi
from impacket.spnego import SPNEGO_NegTokenInit, SPNEGO_NegTokenResp

MS_KRB5 = b"\x06\x09\x2a\x86\x48\x82\xf7\x12\x01\x02\x02"
NDR = bytes.fromhex("045d888aeb1cc9119fe808002b104860") + struct.pack("<I", 2)
LOCK = threading.Lock()


def read_exact(conn, n):
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise EOFError("short read")
        buf += chunk
    return buf


def read_pdu(conn):
    head = read_exact(conn, 16)
    frag_len = struct.unpack("<H", head[8:10])[0]
    return head + read_exact(conn, frag_len - 16)


def auth_of(pdu):
    """(auth_type, auth_level, auth_ctx_id, token) of a PDU's sec_trailer."""
    auth_len = struct.unpack("<H", pdu[10:12])[0]
    if not auth_len:
        return None
    trailer = pdu[len(pdu) - auth_len - 8:len(pdu) - auth_len]
    return trailer[0], trailer[1], struct.unpack("<I", trailer[4:8])[0], pdu[len(pdu) - auth_len:]


def strip_gss(tok):
    """RFC 2743 3.1 header and the krb5 TOK_ID 01 00: the bare Kerberos message."""
    if tok[:1] != b"\x60":
        return tok
    i = 2 + (tok[1] & 0x7F if tok[1] & 0x80 else 0)
    i += 2 + tok[i + 1]  # the mech OID
    return tok[i + 2:]


def pdu(ptype, call_id, body, auth=None):
    """A connection-oriented PDU, little-endian; auth = (type, level, ctx_id, token)."""
    token = b""
    if auth is not None:
        pad = (4 - (16 + len(body)) % 4) % 4
        body += b"\0" * pad
        token = auth[3]
        body += struct.pack("<BBBBI", auth[0], auth[1], pad, 0, auth[2]) + token
    return struct.pack("<BBBB4sHHI", 5, 0, ptype, 3, b"\x10\0\0\0", 16 + len(body), len(token),
                       call_id) + body


def ack_body(bind, secondary):
    n_ctx = bind[24]
    body = struct.pack("<HHI", 4280, 4280, 0x5EED)
    addr = secondary
    body += struct.pack("<H", len(addr)) + addr
    body += b"\0" * ((4 - (16 + len(body)) % 4) % 4)
    body += struct.pack("<B3x", n_ctx)
    for _ in range(n_ctx):
        body += struct.pack("<HH", 0, 0) + NDR
    return body


def serve(conn, creds):
    record = {"complete": False}
    try:
        bind = read_pdu(conn)
        record["bind"] = bind.hex()
        call_id = struct.unpack("<I", bind[12:16])[0]
        auth_type, level, ctx_id, token = auth_of(bind)
        spnego = auth_type == 9
        ap_req = strip_gss(SPNEGO_NegTokenInit(token)["MechToken"] if spnego else token)
        ctx = gssapi.SecurityContext(creds=creds, usage="accept")
        ap_rep = ctx.step(ap_req)
        if spnego:
            resp = SPNEGO_NegTokenResp()
            resp["NegState"] = b"\x01"  # accept-incomplete
            resp["SupportedMech"] = MS_KRB5
            resp["ResponseToken"] = ap_rep
            out = resp.getData()
        else:
            out = ap_rep
        conn.sendall(pdu(12, call_id, ack_body(bind, b"49152\0"), (auth_type, level, ctx_id, out)))
        third = read_pdu(conn)
        record["third_leg_ptype"] = third[2]
        _, _, _, token3 = auth_of(third)
        client_rep = SPNEGO_NegTokenResp(token3)["ResponseToken"] if spnego else token3
        ctx.step(client_rep)
        record["complete"] = bool(ctx.complete)
        record["initiator"] = str(ctx.initiator_name)
        if third[2] == 14:  # alter_context -> alter_context_resp, no auth verifier
            conn.sendall(pdu(15, struct.unpack("<I", third[12:16])[0], ack_body(third, b"")))
    except Exception as err:  # reported on the JSON line; the test decides
        record["error"] = "%s: %s" % (type(err).__name__, err)
    with LOCK:
        sys.stdout.write(json.dumps(record) + "\n")
        sys.stdout.flush()
    try:
        while True:
            data = conn.recv(65536)
            if not data:
                break
            conn.sendall(data)
    except OSError:
        pass
    conn.close()


def main():
    creds = gssapi.Credentials(usage="accept")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sys.stdout.write("%d\n" % sock.getsockname()[1])
    sys.stdout.flush()
    # Die with the test: the parent holds our stdin open.
    threading.Thread(target=lambda: (sys.stdin.read(), sock.close(), sys.exit(0)), daemon=True).start()
    while True:
        try:
            conn, _ = sock.accept()
        except OSError:
            return
        threading.Thread(target=serve, args=(conn, creds), daemon=True).start()


if __name__ == "__main__":
    main()
