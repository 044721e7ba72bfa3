"""Prints ready, then exits after a moment (a target that dies under lu)."""
import sys
import time

print("ready", flush=True)
time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 1.0)
