"""A program that starts lu's agent itself (no gdb, no ptrace needed)."""
import sys
import time

sys.path.insert(0, sys.argv[1])  # a folder holding the lu_payloads package
import lu_payloads

lu_payloads.start()
print("ready", flush=True)
while True:
    time.sleep(0.05)
