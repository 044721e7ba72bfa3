"""Profiled calls by the million on demand: `hot_profiled.py FLAGDIR ROUNDS THREADS`.

Each time FLAGDIR/go-N appears, THREADS threads each run ROUNDS rounds of a
workload with recursion, exceptions and generators, and the process prints
"done N {counts}": how many times each function was called, counted by the
program itself, so a test can check a profile's figures exactly.
"""

import json
import os
import sys
import threading
import time

flag_dir, rounds, thread_count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])


def leaf(x):
    return x + 1


def rec(n):
    if n:
        return rec(n - 1)
    return leaf(n)


def fails(x):
    raise ValueError(x)


def numbers(n):
    for i in range(n):
        yield leaf(i)


def outer(i):
    total = rec(4)
    try:
        fails(i)
    except ValueError:
        total += 1
    return total + sum(numbers(3))


# Per round: outer 1, rec 5, leaf 1 + 3, fails 1, numbers 1.
PER_ROUND = {"outer": 1, "rec": 5, "leaf": 4, "fails": 1, "numbers": 1}


def work():
    for i in range(rounds):
        outer(i)


print("ready", flush=True)
burst = 0
while True:
    burst += 1
    while not os.path.exists(os.path.join(flag_dir, "go-%d" % burst)):
        time.sleep(0.01)
    workers = [threading.Thread(target=work, name="worker-%d" % i) for i in range(thread_count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    counts = {name: per * rounds * thread_count for name, per in PER_ROUND.items()}
    print("done %d %s" % (burst, json.dumps(counts)), flush=True)
