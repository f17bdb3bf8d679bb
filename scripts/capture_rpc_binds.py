#!/usr/bin/python3
"""Record the first PDU python3-impacket sends on ncacn_ip_tcp for each bind kedge must handle.

Run by scripts/capture-rpc-binds (which sets up the KDC, the ccache and KRB5_CONFIG); not meant to
be run alone. A recording server on 127.0.0.1 stores each connection's first PDU and answers a
bind_nak (reason 8, authentication_type_not_recognized), which impacket reports as an exception;
that exception is expected and ignored.

Auth type 9 (SPNEGO), NTLM (10) and the unauthenticated endpoint-mapper bind go through impacket's
own DCERPC_v5.bind(). impacket 0.10 refuses auth type 16 ("Unsupported auth_type"), so those binds
are assembled here from impacket's own pieces: kerberosv5.getKerberosType1() for the AP-REQ (its
authenticator carries GSS checksum flags 0x103E, DCE style) and MSRPCHeader/MSRPCBind/CtxItem/
SEC_TRAILER for the PDU, exactly as DCERPC_v5.bind() lays it out.
"""
import argparse
import os
import socket
import struct
import threading

from impacket.dcerpc.v5 import epm, transport
from impacket.dcerpc.v5.rpcrt import (
    MSRPC_BIND, RPC_C_AUTHN_GSS_KERBEROS, RPC_C_AUTHN_GSS_NEGOTIATE, RPC_C_AUTHN_LEVEL_CONNECT,
    RPC_C_AUTHN_LEVEL_PKT_PRIVACY, RPC_C_AUTHN_WINNT, SEC_TRAILER, CtxItem, MSRPCBind, MSRPCHeader,
)
from impacket.krb5 import crypto, kerberosv5
from impacket.krb5.asn1 import AP_REQ, Authenticator, EncTicketPart
from impacket.krb5.keytab import Keytab
from pyasn1.codec.der import decoder
from impacket.krb5.ccache import CCache
from impacket.spnego import SPNEGO_NegTokenInit
from impacket.uuid import uuidtup_to_bin

EMSMDB = ("a4f1db00-ca47-1067-b31f-00dd010662da", "0.81")
NSPI = ("f5cc5a18-4264-101a-8c59-08002b2f8426", "56.0")
RFR = ("1544f5e0-613c-11d1-93df-00c04fd7bd09", "1.0")
NDR = ("8a885d04-1ceb-11c9-9fe8-08002b104860", "2.0")


class Recorder:
    """Accepts connections on 127.0.0.1 and keeps the first PDU of each."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.pdus = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @staticmethod
    def _read_exact(conn, n):
        buf = b""
        while len(buf) < n:
            chunk = conn.recv(n - len(buf))
            if not chunk:
                raise EOFError("short read")
            buf += chunk
        return buf

    def _serve(self):
        while True:
            conn, _ = self.sock.accept()
            with conn:
                head = self._read_exact(conn, 16)
                little = head[4] & 0x10
                frag_len = struct.unpack("<H" if little else ">H", head[8:10])[0]
                pdu = head + self._read_exact(conn, frag_len - 16)
                self.pdus.append(pdu)
                call_id = head[12:16]
                # bind_nak (C706 12.6.4.5): reason 8, one supported version 5.0, padded to 24 bytes.
                body = struct.pack("<HBBB", 8, 1, 5, 0) + b"\0" * 3
                nak = bytes([5, 0, 13, 3]) + head[4:8] + struct.pack("<HH", 16 + len(body), 0) + call_id
                conn.sendall(nak + body)

    def take(self):
        for _ in range(100):
            if self.pdus:
                return self.pdus.pop(0)
            threading.Event().wait(0.02)
        raise RuntimeError("no PDU recorded")


def impacket_bind(rec, iface, auth_type=None, level=None, creds=None, tgs=None):
    """One bind through impacket's DCERPCTransportFactory / DCERPC_v5.bind()."""
    t = transport.DCERPCTransportFactory("ncacn_ip_tcp:127.0.0.1[%d]" % rec.port)
    if creds is not None:
        user, password, domain = creds
        t.set_credentials(user, password, domain, TGS=tgs)
        t.set_kerberos(tgs is not None)
    dce = t.get_dce_rpc()
    if auth_type is not None:
        dce.set_auth_type(auth_type)
        dce.set_auth_level(level)
    dce.connect()
    try:
        dce.bind(uuidtup_to_bin(iface))
    except Exception as e:  # the recorder answers bind_nak on purpose
        # 8 is both rpc_provider_reason "authentication_type_not_recognized" and an rpc status code
        # in impacket's tables; it reports it as "code: 0x8 - Authentication type not recognized".
        if getattr(e, "error_code", None) != 8 and "authentication_type_not_recognized" not in str(e):
            raise
    dce.disconnect()
    return rec.take()


def strip_gss_header(tok):
    """RFC 2743 3.1: 0x60 len OID(06 len ..) then the mech token (here 01 00 + AP-REQ)."""
    assert tok[0] == 0x60
    i = 1
    if tok[i] & 0x80:
        i += 1 + (tok[i] & 0x7F)
    else:
        i += 1
    assert tok[i] == 0x06
    i += 2 + tok[i + 1]
    assert tok[i:i + 2] == b"\x01\x00", "not a KRB_AP_REQ token id"
    return tok[i + 2:]


def krb5_bind(tgs, creds, iface, level, gss_wrapped):
    """An auth-type-16 bind laid out the way DCERPC_v5.bind() lays out its auth-9 binds."""
    user, password, domain = creds
    _, _, blob = kerberosv5.getKerberosType1(user, password, domain, "", "", "", None, tgs, "127.0.0.1")
    mech_token = SPNEGO_NegTokenInit(blob)["MechToken"]  # GSS-wrapped AP-REQ
    token = mech_token if gss_wrapped else strip_gss_header(mech_token)

    bind = MSRPCBind()
    item = CtxItem()
    item["AbstractSyntax"] = uuidtup_to_bin(iface)
    item["TransferSyntax"] = uuidtup_to_bin(NDR)
    item["ContextID"] = 0
    item["TransItems"] = 1
    bind.addCtxItem(item)
    packet = MSRPCHeader()
    packet["type"] = MSRPC_BIND
    packet["pduData"] = bind.getData()
    packet["call_id"] = 1
    sec = SEC_TRAILER()
    sec["auth_type"] = RPC_C_AUTHN_GSS_KERBEROS
    sec["auth_level"] = level
    sec["auth_ctx_id"] = 79231
    pad = (4 - (len(packet.get_packet()) % 4)) % 4
    if pad:
        packet["pduData"] += b"\xff" * pad
        sec["auth_pad_len"] = pad
    packet["sec_trailer"] = sec
    packet["auth_data"] = token
    return packet.get_packet()


def find_ap_req(token):
    """The AP-REQ inside an auth-9 (SPNEGO), GSS-wrapped or bare auth-16 token."""
    if token[:1] == b"\x6e":
        return token
    if token[:1] == b"\x60":
        try:
            return strip_gss_header(token)
        except AssertionError:
            return strip_gss_header(SPNEGO_NegTokenInit(token)["MechToken"])
    return None


def verify(pdu, keytab):
    """Check a captured bind's AP-REQ against the keytab: ticket (usage 2), authenticator (usage 11).

    Returns a short description: service principal, client, GSS checksum flags.
    """
    auth_len = struct.unpack("<H", pdu[10:12])[0]
    ap = find_ap_req(pdu[len(pdu) - auth_len:]) if auth_len else None
    if ap is None:
        return "no Kerberos token"
    req = decoder.decode(ap, asn1Spec=AP_REQ())[0]
    tkt = req["ticket"]
    sname = "/".join(str(c) for c in tkt["sname"]["name-string"])
    etype = int(tkt["enc-part"]["etype"])
    key = keytab.getKey(sname, etype)
    if key is None:
        raise SystemExit("keytab has no key for %s etype %d" % (sname, etype))
    cipher = crypto._enctype_table[etype]
    enc = cipher.decrypt(crypto.Key(etype, key["keyvalue"]["data"]), 2, bytes(tkt["enc-part"]["cipher"]))
    part = decoder.decode(enc, asn1Spec=EncTicketPart())[0]
    sk = part["key"]
    skey = crypto.Key(int(sk["keytype"]), bytes(sk["keyvalue"]))
    acipher = crypto._enctype_table[int(req["authenticator"]["etype"])]
    auth = decoder.decode(acipher.decrypt(skey, 11, bytes(req["authenticator"]["cipher"])),
                          asn1Spec=Authenticator())[0]
    ck = bytes(auth["cksum"]["checksum"])
    flags = struct.unpack("<I", ck[20:24])[0]
    client = "/".join(str(c) for c in part["cname"]["name-string"])
    return "%s etype %d, client %s, gss flags 0x%x, cb %s, subkey %s" % (
        sname, etype, client, flags, "zero" if ck[4:20] == b"\0" * 16 else "set",
        "yes" if auth["subkey"].isValue else "no")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--ccache", required=True)
    ap.add_argument("--realm", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--fqdn", required=True)
    ap.add_argument("--keytab", required=True)
    a = ap.parse_args()

    cc = CCache.loadFile(a.ccache)

    def tgs_for(service):
        spn = "%s/%s@%s" % (service, a.fqdn, a.realm)
        cred = cc.getCredential(spn, anySPN=False)
        if cred is None:
            raise SystemExit("no ticket for %s in %s (run kvno first)" % (spn, a.ccache))
        return cred.toTGS()

    kcreds = (a.user, "", a.realm)
    rec = Recorder()
    out = {}
    levels = {"connect": RPC_C_AUTHN_LEVEL_CONNECT, "privacy": RPC_C_AUTHN_LEVEL_PKT_PRIVACY}
    for name, iface, service in (("emsmdb", EMSMDB, "exchangeMDB"), ("nspi", NSPI, "exchangeAB"),
                                 ("rfr", RFR, "exchangeRFR")):
        for lname, level in levels.items():
            out["%s_spnego_%s" % (name, lname)] = impacket_bind(
                rec, iface, RPC_C_AUTHN_GSS_NEGOTIATE, level, kcreds, tgs_for(service))
    mdb = tgs_for("exchangeMDB")
    out["emsmdb_krb5_bare_privacy"] = krb5_bind(mdb, kcreds, EMSMDB, RPC_C_AUTHN_LEVEL_PKT_PRIVACY, False)
    out["emsmdb_krb5_gss_privacy"] = krb5_bind(mdb, kcreds, EMSMDB, RPC_C_AUTHN_LEVEL_PKT_PRIVACY, True)
    out["emsmdb_krb5_bare_connect"] = krb5_bind(mdb, kcreds, EMSMDB, RPC_C_AUTHN_LEVEL_CONNECT, False)
    out["emsmdb_ntlm_connect"] = impacket_bind(
        rec, EMSMDB, RPC_C_AUTHN_WINNT, RPC_C_AUTHN_LEVEL_CONNECT, (a.user, a.password, a.realm))
    out["epm_noauth"] = impacket_bind(rec, ("e1af8308-5d1f-11c9-91a4-08002b14a0fa", "3.0"))

    keytab = Keytab.loadFile(a.keytab)
    for name, pdu in out.items():
        with open(os.path.join(a.out, name + ".bin"), "wb") as f:
            f.write(pdu)
        print("%-26s %4d bytes, auth_type %2d, level %d: %s" % (
            name, len(pdu), pdu[len(pdu) - struct.unpack("<H", pdu[10:12])[0] - 8] if pdu[10:12] != b"\0\0" else 0,
            pdu[len(pdu) - struct.unpack("<H", pdu[10:12])[0] - 7] if pdu[10:12] != b"\0\0" else 1,
            verify(pdu, keytab)))


if __name__ == "__main__":
    main()
