"""The main thread asleep in time.sleep(3600)."""
import time

print("ready", flush=True)
time.sleep(3600)
