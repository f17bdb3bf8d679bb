#!/usr/bin/python3
"""A real MS-RPC client for the RPC edge tests: python3-impacket binds to EMSMDB over
ncacn_ip_tcp with Kerberos, auth_type 9 (RPC_C_AUTHN_GSS_NEGOTIATE), level connect.

The service ticket must already be in KRB5CCNAME (MIT `kvno <spn>`): impacket gets it with
CCache.getCredential(spn).toTGS() and never asks a KDC (it would ask port 88 for `host/`).
Prints one JSON line: {"ok": true, "max_xmit": ...} or {"ok": false, "error": ...}.
"""
import argparse
import json
import os
import sys

from impacket.dcerpc.v5 import transport
from impacket.dcerpc.v5.rpcrt import RPC_C_AUTHN_GSS_NEGOTIATE, RPC_C_AUTHN_LEVEL_CONNECT
from impacket.krb5.ccache import CCache
from impacket.uuid import uuidtup_to_bin

EMSMDB = ("a4f1db00-ca47-1067-b31f-00dd010662da", "0.81")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--spn", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--realm", required=True)
    a = ap.parse_args()
    try:
        cc = CCache.loadFile(os.environ["KRB5CCNAME"].removeprefix("FILE:"))
        cred = cc.getCredential(a.spn, anySPN=False)
        if cred is None:
            raise RuntimeError("no ticket for %s in the ccache" % a.spn)
        t = transport.DCERPCTransportFactory("ncacn_ip_tcp:127.0.0.1[%d]" % a.port)
        t.set_credentials(a.user, "", a.realm, TGS=cred.toTGS())
        t.set_kerberos(True)
        t.set_connect_timeout(10)
        dce = t.get_dce_rpc()
        dce.set_auth_type(RPC_C_AUTHN_GSS_NEGOTIATE)
        dce.set_auth_level(RPC_C_AUTHN_LEVEL_CONNECT)
        dce.connect()
        dce.bind(uuidtup_to_bin(EMSMDB))
        dce.disconnect()
        print(json.dumps({"ok": True}))
    except Exception as err:
        print(json.dumps({"ok": False, "error": "%s: %s" % (type(err).__name__, err)}))
        sys.exit(1)


if __name__ == "__main__":
    main()
