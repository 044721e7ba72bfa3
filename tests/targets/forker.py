"""A process that forks when the test says so; then each process calls work() exactly as often as it is told.

Usage: forker.py DIR MODE

Prints "ready <pid>", then serves commands until killed: a file DIR/run-<pid> holding "work N" makes the
process call work() N times, "map N" (pool mode) map square over range(N) on its pool; the file is
removed and one line with the values, space separated, is appended to DIR/out-<pid>. The parent and
a forked child serve (not a pool's workers), before the fork and after.

Once the file DIR/fork exists (a test injects, patches or profiles first, then creates it; made before
the start, the fork happens at once), the target forks:

  MODE fork: os.fork(); the child writes its pid to DIR/child.
  MODE pool: makes a multiprocessing "fork" Pool(2); writes to DIR/pool a JSON object
             {"results": pool.map(square, range(10)), "workers": [the pool's worker pids]}.

A forked child exits when its parent has gone. Standard library only, CPython 3.8+.
"""

import json
import multiprocessing
import os
import sys
import time


def work():
    return 1


WORK_CODE = work.__code__  # what work() runs before any change (a test compares with it)


def square(i):
    return i * i


def write_atomically(path, text):
    with open(path + ".tmp", "w") as out:
        out.write(text)
    os.rename(path + ".tmp", path)


def run(command, pool):
    what, count = command.split()
    if what == "map":
        return pool.map(square, range(int(count)))
    return [work() for _ in range(int(count))]


def serve_once(directory, pool):
    me = os.getpid()
    commands = os.path.join(directory, "run-%d" % me)
    if os.path.exists(commands):
        with open(commands) as handle:
            command = handle.read()
        os.unlink(commands)
        values = run(command, pool)
        with open(os.path.join(directory, "out-%d" % me), "a") as out:
            out.write(" ".join(str(value) for value in values) + "\n")


def fork(directory, mode):
    """Fork as MODE says: (the parent's pid if this is the forked child else None, the pool or None)."""
    if mode == "pool":
        pool = multiprocessing.get_context("fork").Pool(2)
        results = pool.map(square, range(10))
        workers = sorted(child.pid for child in multiprocessing.active_children())
        write_atomically(os.path.join(directory, "pool"), json.dumps({"results": results, "workers": workers}))
        return None, pool
    parent = os.getpid()
    if os.fork() == 0:
        write_atomically(os.path.join(directory, "child"), str(os.getpid()))
        return parent, None
    return None, None


def main():
    directory, mode = sys.argv[1], sys.argv[2]
    print("ready %d" % os.getpid(), flush=True)
    forked = False
    parent = pool = None
    while True:
        if parent is not None and os.getppid() != parent:
            os._exit(0)  # a forked child whose parent has gone
        if not forked and os.path.exists(os.path.join(directory, "fork")):
            forked = True
            parent, pool = fork(directory, mode)
        serve_once(directory, pool)
        time.sleep(0.01)


if __name__ == "__main__":
    main()
