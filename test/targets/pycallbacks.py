#!/usr/bin/env python3
"""pycallbacks: libgocr's checkpoint callbacks used from Python with ctypes.

Usage: pycallbacks.py RESULT_PATH LIBGOCR_SO (the zdtm contract in
test/harness_test.go).

The interpreter holds a deleted scratch file (tempfile.TemporaryFile),
which its callback replaces around a checkpoint, and records buffered in
memory. Its callback writes
the records to RESULT_PATH.flushed and closes the scratch file before the
checkpoint, then opens a new one after. It must be told it was restarted.
"""
import ctypes
import errno
import os
import signal
import sys
import tempfile
import threading
import time

GOCR_CALLBACK_THREAD = 0x1
GOCR_RESTARTED = 1

got_term = False


def on_term(signum, frame):
    global got_term
    got_term = True


def write_result(path, text):
    # By path, so the restored interpreter finds its result file by name.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def main():
    result, libpath = sys.argv[1], sys.argv[2]
    signal.signal(signal.SIGTERM, on_term)

    lib = ctypes.CDLL(libpath, use_errno=True)
    callback_t = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)
    lib.gocr_register_callback.argtypes = [callback_t, ctypes.c_void_p, ctypes.c_int]
    lib.gocr_register_callback.restype = ctypes.c_int
    lib.gocr_checkpoint.argtypes = []
    lib.gocr_checkpoint.restype = ctypes.c_int

    records = "".join("record %d\n" % i for i in range(1, 101))
    state = {"scratch": tempfile.TemporaryFile(dir=os.path.dirname(result)), "runs": 0}
    state["scratch"].write(b"scratch before\n")
    state["scratch"].flush()
    finished = threading.Event()

    def on_checkpoint(arg):
        state["runs"] += 1
        with open(result + ".flushed", "w") as f:
            f.write(records)
        state["scratch"].close()
        state["verdict"] = lib.gocr_checkpoint()
        state["errno"] = ctypes.get_errno()
        state["scratch"] = tempfile.TemporaryFile(dir=os.path.dirname(result))
        state["scratch"].write(b"scratch after\n")
        state["scratch"].flush()
        finished.set()
        return 0

    # Kept referenced for as long as libgocr may call it.
    state["callback"] = callback_t(on_checkpoint)
    if lib.gocr_register_callback(state["callback"], None, GOCR_CALLBACK_THREAD) < 0:
        write_result(result, "FAIL: gocr_register_callback: %s\n" % os.strerror(ctypes.get_errno()))
        return 1

    open(result + ".ready", "w").close()
    while not got_term:
        time.sleep(0.01)

    def fail(why):
        write_result(result, "FAIL: %s\n" % why)
        return 1

    if not finished.wait(10):
        return fail("the callback did not finish within 10 s of SIGTERM (ran %d times)" % state["runs"])
    if state["runs"] != 1:
        return fail("the callback ran %d times, want once" % state["runs"])
    if state["verdict"] != GOCR_RESTARTED:
        return fail("gocr_checkpoint() returned %d (%s), want %d (restarted)"
                    % (state["verdict"], errno.errorcode.get(state["errno"], state["errno"]), GOCR_RESTARTED))
    with open(result + ".flushed") as f:
        if f.read() != records:
            return fail("the flushed records differ from the buffered ones")
    scratch = state["scratch"]
    scratch.seek(0)
    if scratch.read() != b"scratch after\n":
        return fail("the scratch file was not reopened after the restart")
    if os.fstat(scratch.fileno()).st_nlink != 0:
        return fail("the scratch file is not a deleted file")
    write_result(result, "PASS\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
