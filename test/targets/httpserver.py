#!/usr/bin/env python3
"""httpserver: Python's ThreadingHTTPServer with keep-alive clients.

The server listens on 127.0.0.1 (a port the kernel picks, written to
RESULT_PATH.port) and answers GET /N with "hello N". In this process a
keep-alive client (http.client, HTTP/1.1) has made one request on its
connection; a client outside (the test) may hold another. On SIGTERM the
inside client makes its next request on the same connection, from the
same local port, and checks the answer; PASS or FAIL.

Usage: httpserver.py RESULT_PATH (the zdtm contract in test/harness_test.go).
"""
import http.client
import http.server
import signal
import sys
import threading
import time

got_term = False


def on_term(signum, frame):
    global got_term
    got_term = True


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive

    def do_GET(self):
        body = ("hello " + self.path.lstrip("/")).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def result(text):
    with open(sys.argv[1], "w") as f:
        f.write(text + "\n")


def main():
    signal.signal(signal.SIGTERM, on_term)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    client.request("GET", "/1")
    r = client.getresponse()
    if r.read() != b"hello 1":
        result("FAIL: first answer")
        return
    local = client.sock.getsockname()
    with open(sys.argv[1] + ".port", "w") as f:
        f.write(str(port))
    open(sys.argv[1] + ".ready", "w").close()
    while not got_term:
        time.sleep(0.01)
    if client.sock is None or client.sock.getsockname() != local:
        result("FAIL: the client's connection is not the one it had")
        return
    client.request("GET", "/2")
    r = client.getresponse()
    body = r.read()
    if body != b"hello 2":
        result("FAIL: second answer %r" % body)
        return
    if client.sock.getsockname() != local:
        result("FAIL: the client reconnected")
        return
    result("PASS")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # every failure is reported, not left to time out
        result("FAIL: %r" % e)
