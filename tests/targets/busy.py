"""A pure-Python busy loop on the main thread, no other thread."""
import sys

print("ready", flush=True)
n = 0
while True:
    n += 1
    if n % 1000003 == 0:
        sys.stdout.flush()
