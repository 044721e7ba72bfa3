"""Allocation- and GC-heavy: cyclic garbage, dicts and lists, on two threads."""
import gc
import threading

gc.set_threshold(100, 5, 5)


def churn():
    keep = []
    while True:
        for i in range(200):
            a = {"i": i, "l": [i] * 10}
            b = [a, {"x": a}]
            a["b"] = b  # a cycle for the collector
            keep.append(b)
        if len(keep) > 2000:
            keep = keep[1000:]


worker = threading.Thread(target=churn, daemon=True)
worker.start()
print("ready", flush=True)
churn()
