#!/usr/bin/python3
"""A CAS member stand-in for kedge's passthrough tests: an HTTP/1.1 keep-alive server that
completes its own Negotiate logon with MIT's acceptor (python3-gssapi, keytab from
KRB5_KTNAME; run it with KRB5RCACHETYPE=none or a replay cache of its own), binds the
logon to the connection as IIS does, and answers each request with
"conn=<n> user=<principal or -> path=<path>". The acceptor's output token (AP-REP) goes back
in "WWW-Authenticate: Negotiate <b64>". Prints "port <n>" once listening.
"""

import base64
import http.server
import itertools
import sys

import gssapi

COUNTER = itertools.count(1)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        self.conn_id = next(COUNTER)
        self.user = None

    def log_message(self, *args):
        pass

    def do_GET(self):
        out = None
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("negotiate "):
            try:
                ctx = gssapi.SecurityContext(usage="accept")
                out = ctx.step(base64.b64decode(auth.split(" ", 1)[1]))
                self.user = str(ctx.initiator_name)
            except gssapi.exceptions.GSSError as e:
                self.send_response(401)
                self.send_header("WWW-Authenticate", "Negotiate")
                body = ("refused: %s" % e).encode()
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
        if self.user is None:
            self.send_response(401)
            self.send_header("WWW-Authenticate", "Negotiate")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = ("conn=%d user=%s path=%s claimed=%s" % (
            self.conn_id, self.user, self.path, self.headers.get("X-Test-User", "-"))).encode()
        self.send_response(200)
        if out:
            self.send_header("WWW-Authenticate", "Negotiate " + base64.b64encode(out).decode())
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print("port %d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
