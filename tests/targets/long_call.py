"""A worker thread already inside outer() -> inner(), sleeping for an hour, before anything attaches.

Prints "ready" from inside inner(), just before the sleep: a profile started
after that finds both calls running, begun before it.
"""
import threading
import time


def inner():
    print("ready", flush=True)
    time.sleep(3600)


def outer():
    inner()


threading.Thread(target=outer, name="long-worker", daemon=True).start()
time.sleep(3600)
