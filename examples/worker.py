"""A worker loop that runs forever: a producer queues jobs, workers process them.

    python examples/worker.py [--workers N]        # prints its pid, then a status line every 5 s

Things to try on it (PID is printed at start):

    lu profile PID '__main__.*'                    # where the time goes
    lu debug PID __main__.score                    # arguments and results of one function
    lu attach PID                                  # then: import __main__; __main__.STATS
"""
import argparse
import hashlib
import itertools
import os
import queue
import random
import threading
import time

JOBS = queue.Queue(maxsize=100)
STATS = {"done": 0, "failed": 0, "total_score": 0}
STATS_LOCK = threading.Lock()


def make_job(number):
    return {"id": number, "text": " ".join(random.choice(["alpha", "beta", "gamma", "delta"])
                                          for _ in range(random.randint(3, 12)))}


def parse(job):
    return job["text"].split()


def score(words):
    digest = hashlib.sha256(" ".join(words).encode()).hexdigest()
    return sum(len(w) for w in words) + int(digest[:2], 16) % 7


def store(job, value):
    with STATS_LOCK:
        STATS["done"] += 1
        STATS["total_score"] += value


def process(job):
    try:
        store(job, score(parse(job)))
    except Exception:
        with STATS_LOCK:
            STATS["failed"] += 1


def producer():
    for number in itertools.count(1):
        JOBS.put(make_job(number))
        time.sleep(0.005)


def worker():
    while True:
        process(JOBS.get())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    threading.Thread(target=producer, name="producer", daemon=True).start()
    for n in range(args.workers):
        threading.Thread(target=worker, name="worker-%d" % n, daemon=True).start()
    print("worker: pid %d, %d worker threads" % (os.getpid(), args.workers), flush=True)
    try:
        while True:
            time.sleep(5)
            with STATS_LOCK:
                print("done %(done)d, failed %(failed)d, total score %(total_score)d" % STATS, flush=True)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
