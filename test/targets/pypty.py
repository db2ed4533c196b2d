#!/usr/bin/env python3
"""pypty: a Python pty.fork(), as expect-like programs use it.

The child runs in a session of its own on the pty's slave, its controlling
terminal, and appends every line it reads to RESULT_PATH.echo. The parent
types "before" into the master and leaves the slave's echo of it unread in
the master. After SIGTERM the parent types "after", waits for the child to
have read it, checks that the master holds both echoes, and has the child
check its terminal: its controlling terminal, session and foreground group.

Usage: pypty.py RESULT_PATH (the zdtm contract in test/harness_test.go).
"""
import os
import pty
import signal
import sys
import time


class Term(Exception):
    pass


def on_term(signum, frame):
    raise Term()


def write_result(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def wait_for(pred, what):
    deadline = time.monotonic() + 10
    while not pred():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out waiting for " + what)
        time.sleep(0.01)


def read_file(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return b""


def child(result, echo):
    signal.signal(signal.SIGTERM, on_term)
    try:
        while True:
            data = os.read(0, 256)
            fd = os.open(echo, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.write(fd, data)
            os.close(fd)
    except Term:
        pass
    problems = []
    if os.getsid(0) != os.getpid():
        problems.append("session %d, want its own" % os.getsid(0))
    if os.tcgetpgrp(0) != os.getpgrp():
        problems.append("foreground group %d, want %d" % (os.tcgetpgrp(0), os.getpgrp()))
    st = os.fstat(0)
    with open("/proc/self/stat") as f:
        tty_nr = int(f.read().rsplit(")", 1)[1].split()[4])
    if tty_nr != st.st_rdev:
        problems.append("tty_nr %#x, want stdin's %#x" % (tty_nr, st.st_rdev))
    write_result(result + ".child", "; ".join(problems) + "\n")
    os._exit(1 if problems else 0)


def main():
    result = sys.argv[1]
    echo = result + ".echo"
    pid, master = pty.fork()
    if pid == 0:
        child(result, echo)
    signal.signal(signal.SIGTERM, on_term)
    try:
        os.write(master, b"before\n")
        wait_for(lambda: read_file(echo) == b"before\n", "the child to read before")
        open(result + ".ready", "w").close()
        while True:
            time.sleep(0.01)
    except Term:
        pass
    try:
        os.write(master, b"after\n")
        wait_for(lambda: read_file(echo) == b"before\nafter\n", "the child to read after")
        os.set_blocking(master, False)
        seen = b""
        try:
            while True:
                seen += os.read(master, 256)
        except BlockingIOError:
            pass
        if seen != b"before\r\nafter\r\n":
            raise RuntimeError("the master holds %r, want both echoes" % seen)
        os.kill(pid, signal.SIGTERM)
        _, status = os.waitpid(pid, 0)
        if status != 0:
            raise RuntimeError("child: " + read_file(result + ".child").decode().strip())
    except Exception as e:  # every failure is the verdict
        write_result(result, "FAIL: %s\n" % e)
        sys.exit(1)
    write_result(result, "PASS\n")


main()
