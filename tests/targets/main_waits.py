"""The main thread waits in select() for SECONDS (default 6), then runs Python; a worker thread sleeps.

sys.remote_exec arms the main thread only, and its script runs when the
thread next reaches a safe point: here, not before the select returns.
Prints "ready", then "main back" when the select returned, then "alive N"
every 0.1 s.
"""

import select
import sys
import threading
import time

seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 6.0
threading.Thread(target=lambda: time.sleep(3600), name="sleeper", daemon=True).start()
print("ready", flush=True)
select.select([], [], [], seconds)
print("main back", flush=True)
n = 0
while True:
    n += 1
    time.sleep(0.1)
    print("alive", n, flush=True)
