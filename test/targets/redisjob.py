#!/usr/bin/env python3
"""redisjob: redis-server and two of its clients in one job.

This process starts redis-server as its child (on 127.0.0.1:PORT, no
persistence), loads KEYS keys into it and holds two client connections:
one idle after a PING, one mid-pipeline: a GET of every key sent in one
go, with a small receive buffer, of whose replies only the first 1000
are read, so the rest wait in redis and in both ends' TCP queues. On
SIGTERM the idle client PINGs again, the pipelined one reads every reply
left, each the right value in order, both over the connections they had;
every key is read back once more (MGET), then redis is shut down and
reaped; PASS or FAIL.

Usage: redisjob.py RESULT_PATH REDIS_SERVER PORT (the zdtm contract in
test/harness_test.go).
"""
import os
import signal
import socket
import subprocess
import sys
import time

KEYS = 10000
READ_FIRST = 1000

got_term = False


def on_term(signum, frame):
    global got_term
    got_term = True


def key(i):
    return "key:%05d" % i


def value(i):
    # About 100 bytes, so the replies outgrow the client's buffer.
    return ("value-%05d-" % i) + "abcdefghij" * 9


def command(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


class Replies:
    """Reads RESP replies from a socket."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def line(self):
        while b"\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("connection closed")
            self.buf += data
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def exact(self, n):
        while len(self.buf) < n:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("connection closed")
            self.buf += data
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def reply(self):
        line = self.line()
        kind, rest = line[:1], line[1:]
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.exact(n + 2)
            return data[:-2].decode()
        if kind == b"*":
            return [self.reply() for _ in range(int(rest))]
        if kind in (b"+", b":"):
            return rest.decode()
        raise ValueError("redis answered %r" % line)


def result(text):
    with open(sys.argv[1], "w") as f:
        f.write(text + "\n")


def connect(port, rcvbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        # Before connect, so the window it advertises is small too.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    return s


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def main():
    signal.signal(signal.SIGTERM, on_term)
    server, port = sys.argv[2], int(sys.argv[3])
    workdir = os.path.dirname(sys.argv[1])
    redis = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", workdir, "--daemonize", "no"],
        stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            loader = connect(port)
            break
        except OSError:
            if time.monotonic() > deadline or redis.poll() is not None:
                raise
            time.sleep(0.02)
    loader.sendall(b"".join(command("SET", key(i), value(i)) for i in range(KEYS)))
    replies = Replies(loader)
    for i in range(KEYS):
        check(replies.reply() == "OK", "SET %s" % key(i))
    loader.close()

    idle = connect(port)
    idle_replies = Replies(idle)
    idle.sendall(command("PING"))
    check(idle_replies.reply() == "PONG", "first PING")
    piped = connect(port, rcvbuf=4096)
    piped_replies = Replies(piped)
    piped.sendall(b"".join(command("GET", key(i)) for i in range(KEYS)))
    for i in range(READ_FIRST):
        got = piped_replies.reply()
        check(got == value(i), "reply %d before the checkpoint: %r" % (i, got))
    names = (idle.getsockname(), piped.getsockname())

    open(sys.argv[1] + ".ready", "w").close()
    while not got_term:
        time.sleep(0.01)

    check((idle.getsockname(), piped.getsockname()) == names,
          "the clients' connections are not the ones they had")
    idle.sendall(command("PING"))
    check(idle_replies.reply() == "PONG", "PING after the restore")
    for i in range(READ_FIRST, KEYS):
        got = piped_replies.reply()
        check(got == value(i), "pipelined reply %d: %r" % (i, got))
    for first in range(0, KEYS, 1000):
        idle.sendall(command("MGET", *[key(i) for i in range(first, first + 1000)]))
        got = idle_replies.reply()
        for i, v in enumerate(got):
            check(v == value(first + i), "MGET %s: %r" % (key(first + i), v))
    idle.sendall(command("DBSIZE"))
    n = idle_replies.reply()
    check(n == str(KEYS), "DBSIZE %s" % n)
    idle.sendall(command("SHUTDOWN", "NOSAVE"))
    code = redis.wait(timeout=10)
    check(code == 0, "redis-server exited with %d" % code)
    result("PASS")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # every failure is reported, not left to time out
        result("FAIL: %r" % e)
