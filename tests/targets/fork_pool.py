"""A multiprocessing "fork" Pool(3) that keeps mapping work() over its workers until killed.

Usage: fork_pool.py [DELAY_SECONDS] [RESULTS_FILE]. The pool is made DELAY_SECONDS after start (so a test
can act on the parent before the workers exist); each result "<worker pid> <body>" is appended to RESULTS_FILE.
"""

import multiprocessing
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import treeapp.views


def work(i):
    time.sleep(0.02)  # long enough that every worker of the pool gets some of each map
    return os.getpid(), treeapp.views.body()


def main():
    delay = float(sys.argv[1]) if len(sys.argv) > 1 else 0.0
    results = sys.argv[2] if len(sys.argv) > 2 else os.devnull
    time.sleep(delay)
    pool = multiprocessing.get_context("fork").Pool(3)
    print("ready %d" % os.getpid(), flush=True)
    i = 0
    while True:
        lines = ["%d %s\n" % (pid, body.decode()) for pid, body in pool.map(work, range(i, i + 6), chunksize=1)]
        with open(results, "a") as out:
            out.writelines(lines)
        i += 6
        time.sleep(0.05)


if __name__ == "__main__":
    main()
