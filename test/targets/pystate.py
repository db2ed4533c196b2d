#!/usr/bin/env python3
"""pystate: an interpreter's heap as checkpoint state.

A loop keeps a dict, a growing list and a running sha256 of every value in
lockstep. After restore, the hash recomputed from the list must equal the
running hash, the dict must agree with the list, and the loop counter must
have moved past where it was when the target became ready.

Usage: pystate.py RESULT_PATH (the zdtm contract in test/harness_test.go).
"""
import hashlib
import os
import signal
import sys
import time

got_term = False


def on_term(signum, frame):
    global got_term
    got_term = True


def value(i):
    return (i * 2654435761) % (1 << 32)


def write_result(path, text):
    # By path, so the restored interpreter finds its result file by name.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


# Module-level, so the harness's corruption test can reach the state with
# PyRun_SimpleString from a debugger.
running = hashlib.sha256()
values = []
latest = {}
i = 0


def step():
    global i
    i += 1
    v = value(i)
    values.append(v)
    running.update(v.to_bytes(8, "little"))
    latest[i % 997] = (i, v)


def main():
    result = sys.argv[1]
    signal.signal(signal.SIGTERM, on_term)

    for _ in range(200):
        step()
    ready_i = i
    open(result + ".ready", "w").close()

    while not got_term:
        step()
        time.sleep(0.005)

    def fail(reason):
        sys.stderr.write("FAIL: %s\n" % reason)
        write_result(result, "FAIL: %s\n" % reason)
        sys.exit(1)

    if len(values) != i:
        fail("list holds %d values but the loop ran %d times" % (len(values), i))
    check = hashlib.sha256()
    for n, v in enumerate(values, 1):
        if v != value(n):
            fail("list[%d] is %d, want %d" % (n - 1, v, value(n)))
        check.update(v.to_bytes(8, "little"))
    if check.hexdigest() != running.hexdigest():
        fail("running sha256 %s != recomputed %s" % (running.hexdigest(), check.hexdigest()))
    for k, (n, v) in latest.items():
        want_n = i - ((i - k) % 997)
        if n != want_n or v != values[n - 1]:
            fail("dict[%d] is (%d, %d), want (%d, %d)" % (k, n, v, want_n, values[want_n - 1]))
    if i <= ready_i:
        fail("loop counter %d did not progress past %d" % (i, ready_i))
    write_result(result, "PASS\n")
    sys.exit(0)


if __name__ == "__main__":
    main()
