"""A target that proves it is alive and computing right; prints "ready", then "beat N ok" lines.

parked: the main thread sleeps between beats (a thread lu can borrow at once).
busy:   the main thread never waits; lu has to catch it inside the evaluation loop.

Each beat checks floating-point results against values computed at start, so a
thread whose registers or vector state were not put back exactly would say
"WRONG" (or crash) instead of "ok".
"""
import sys
import time

mode = sys.argv[1] if len(sys.argv) > 1 else "parked"


def work():
    total = 0.0
    for i in range(2000):
        total += (i * 0.1) ** 0.5 / 3.0
    return total, sum(range(5000)), "-".join(str(i) for i in range(50))


expected = work()
print("ready", flush=True)
beat = 0
last = time.monotonic()
while True:
    if mode == "parked":
        time.sleep(0.02)
    result = work()
    now = time.monotonic()
    if mode == "parked" or now - last > 0.02:
        beat += 1
        last = now
        print("beat %d %s" % (beat, "ok" if result == expected else "WRONG %r" % (result,)), flush=True)
