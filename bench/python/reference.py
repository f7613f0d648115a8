#!/usr/bin/env python3
"""The seed's Python programs as benchmark workloads for troupe_bench.

Usage: reference.py WORKLOAD N K, where WORKLOAD is one of

  ping-pong   seed 003's generator pair: produce() calls c.send(n) N times and
              the consumer generator answers each with '200 OK'.
              Prints round trips/s.
  stream-reply  the same: the seed's c.send(n) rate, as the reference for
              troupe's stream with a reply per item. Prints items/s.
  fan-in      K threads each put N items into one queue.Queue; the main thread
              gets all K*N. Prints messages/s.
  spawn-main  N generators that each wait for one value: create and prime all
              (run to their first yield), then send each one value so it ends.
              Prints seconds and bytes per generator (peak RSS while all are
              alive minus RSS before, over N).

Output: one line 'result VALUE [BYTES_PER_ACTOR]', as troupe_bench --one does.
"""

import queue
import sys
import threading
import time


def status_bytes(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return -1


# -- ping-pong: seed 003, without the prints --------------------------------

def consumer():
    r = ''
    while True:
        n = yield r
        if not n:
            return
        r = '200 OK'


def produce(c, rounds):
    c.send(None)
    n = 0
    while n < rounds:
        n = n + 1
        r = c.send(n)
        assert r == '200 OK'
    c.close()


def ping_pong(rounds):
    t0 = time.perf_counter()
    produce(consumer(), rounds)
    return rounds / (time.perf_counter() - t0)


# -- fan-in -------------------------------------------------------------------

def fan_in(per_sender, senders):
    q = queue.Queue()

    def send():
        for i in range(per_sender):
            q.put(i)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=send) for _ in range(senders)]
    for t in threads:
        t.start()
    for _ in range(per_sender * senders):
        q.get()
    elapsed = time.perf_counter() - t0
    for t in threads:
        t.join()
    return per_sender * senders / elapsed


# -- spawn --------------------------------------------------------------------

def waiter():
    yield  # alive: waits for one value
    return


def spawn(n):
    gens = [None] * n  # allocated before the baseline, like the C++ handles
    before = status_bytes("VmRSS")
    t0 = time.perf_counter()
    for i in range(n):
        g = waiter()
        next(g)
        gens[i] = g
    peak = status_bytes("VmHWM")
    for g in gens:
        try:
            g.send(1)
        except StopIteration:
            pass
    elapsed = time.perf_counter() - t0
    return elapsed, (peak - before) / n


def main(argv):
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    workload, n, k = argv[1], int(argv[2]), int(argv[3])
    if workload in ("ping-pong", "stream-reply"):
        print("result %.17g" % ping_pong(n))
    elif workload == "fan-in":
        print("result %.17g" % fan_in(n, k))
    elif workload == "spawn-main":
        seconds, per_actor = spawn(n)
        print("result %.17g %.17g" % (seconds, per_actor))
    else:
        print("unknown workload '%s'" % workload, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
