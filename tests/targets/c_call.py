"""A worker thread holds the GIL in one long C call; the main thread waits in join()."""
import sys
import threading
import time

seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 30.0

# Calibrate: how many range items per second does sum() consume here?
t0 = time.perf_counter()
sum(range(2000000))
RATE = 2000000 / (time.perf_counter() - t0)


def long_c_call():
    # "ready" comes from this thread, immediately before the call: no other
    # thread asks for the GIL in between, so the call has begun when lu looks.
    print("ready", flush=True)
    sum(range(int(seconds * RATE)))  # never releases the GIL
    print("c-call-done", flush=True)


worker = threading.Thread(target=long_c_call, daemon=True)
worker.start()
worker.join()
time.sleep(3600)
