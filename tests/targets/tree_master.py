"""A master that forks workers, like a pre-fork server: `tree_master.py MODULE_DIR WORKERS [--preload]`.

The module `treework` (written into MODULE_DIR by the test) holds `work()`;
each worker imports it (the master too with --preload) and calls it every
20 ms, appending "<pid> <result>" to MODULE_DIR/results. Prints
"ready <pid> <worker pids>" once every worker started. A file MODULE_DIR/more
makes the master fork one more worker; a worker that dies is not replaced.
"""

import os
import sys
import time

directory, count = sys.argv[1], int(sys.argv[2])
sys.path.insert(0, directory)
if "--preload" in sys.argv:
    import treework  # noqa: F401


def serve():
    import treework

    with open(os.path.join(directory, "results"), "a", buffering=1) as out:
        while True:
            out.write("%d %s\n" % (os.getpid(), treework.work()))
            time.sleep(0.02)


def fork_worker():
    pid = os.fork()
    if pid == 0:
        try:
            serve()
        finally:
            os._exit(0)
    return pid


workers = [fork_worker() for _ in range(count)]
print("ready", os.getpid(), " ".join(map(str, workers)), flush=True)
more = os.path.join(directory, "more")
while True:
    time.sleep(0.05)
    if os.path.exists(more):
        os.unlink(more)
        workers.append(fork_worker())
        print("forked", workers[-1], flush=True)
