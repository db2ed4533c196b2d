#!/usr/bin/env python3
"""pythreads: an interpreter with four threads, each with its own state.

  counter   increments `counts["counter"]` every 5 ms; every 5th step sets
            the event;
  producer  puts 0, 1, 2, ... into a bounded queue.Queue (blocks when full);
  consumer  takes them out, requires each to be the previous one + 1 and
            keeps their sum;
  waiter    waits on the threading.Event (no timeout), clears it, counts.

The main thread handles SIGTERM with signal.signal and only sets a flag.
Then it requires every thread to make progress (at least 20 more steps),
stops them, joins them and checks that the state is consistent: the
consumer saw exactly 0..N-1 with sum N*(N-1)/2 where N is what the producer
put, the queue is empty, the waiter woke no more often than the event was
set. It writes PASS or FAIL.

Usage: pythreads.py RESULT_PATH (the zdtm contract in test/harness_test.go).
"""
import os
import queue
import signal
import sys
import threading
import time

got_term = False


def on_term(signum, frame):
    global got_term
    got_term = True


def write_result(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


# Module-level, so the corruption test can reach them from a debugger.
counts = {"counter": 0, "produced": 0, "consumed": 0, "woken": 0, "sets": 0}
consumed_sum = 0
errors = []
stop = threading.Event()
ev = threading.Event()
q = queue.Queue(maxsize=50)
DONE = object()


def counter():
    while not stop.is_set():
        counts["counter"] += 1
        if counts["counter"] % 5 == 0:
            counts["sets"] += 1
            ev.set()
        time.sleep(0.005)
    ev.set()  # Lets the waiter see stop.


def producer():
    i = 0
    while not stop.is_set():
        q.put(i)
        i += 1
        counts["produced"] = i
        if i % 10 == 0:
            time.sleep(0.01)
    q.put(DONE)


def consumer():
    global consumed_sum
    want = 0
    while True:
        v = q.get()
        if v is DONE:
            return
        if v != want:
            errors.append("consumer got %d, want %d" % (v, want))
            want = v
        consumed_sum += v
        want += 1
        counts["consumed"] = want


def waiter():
    while not stop.is_set():
        ev.wait()
        ev.clear()
        counts["woken"] += 1


def main():
    path = sys.argv[1]
    signal.signal(signal.SIGTERM, on_term)
    threads = [threading.Thread(target=f, name=f.__name__) for f in (counter, producer, consumer, waiter)]
    for t in threads:
        t.start()
    while counts["woken"] < 5 or counts["consumed"] < 100:
        time.sleep(0.01)
    open(path + ".ready", "w").close()
    while not got_term:
        time.sleep(0.01)

    keys = ("counter", "produced", "consumed", "woken")
    at_term = {k: counts[k] for k in keys}
    deadline = time.monotonic() + 5
    while any(counts[k] < at_term[k] + 20 for k in keys):
        if time.monotonic() > deadline:
            stuck = [k for k in keys if counts[k] < at_term[k] + 20]
            write_result(path, "FAIL: no progress after SIGTERM in %s: %s at SIGTERM, %s now\n"
                         % (stuck, at_term, {k: counts[k] for k in keys}))
            os._exit(1)
        time.sleep(0.01)
    stop.set()
    for t in threads:
        t.join(5)
        if t.is_alive():
            write_result(path, "FAIL: thread %s did not stop\n" % t.name)
            os._exit(1)
    n = counts["produced"]
    if errors:
        fail = errors[0]
    elif counts["consumed"] != n:
        fail = "consumed %d items, produced %d" % (counts["consumed"], n)
    elif consumed_sum != n * (n - 1) // 2:
        fail = "consumed sum %d, want %d for 0..%d" % (consumed_sum, n * (n - 1) // 2, n - 1)
    elif not q.empty():
        fail = "queue not empty at the end"
    elif counts["woken"] > counts["sets"] + 1:
        fail = "waiter woke %d times, event set %d times" % (counts["woken"], counts["sets"])
    else:
        fail = None
    if fail:
        write_result(path, "FAIL: %s\n" % fail)
        os._exit(1)
    print("pythreads: %s" % counts, flush=True)
    write_result(path, "PASS\n")
    os._exit(0)


if __name__ == "__main__":
    main()
