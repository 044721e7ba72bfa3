"""A worker thread holds the GIL in one long C call; the main thread waits in join().

The call is libc's usleep() through ctypes.PyDLL, which (unlike CDLL) keeps
the GIL while the C function runs: a C call of a known wall-clock length,
whatever the machine's load.
"""
import ctypes
import sys
import threading
import time

seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 30.0
libc = ctypes.PyDLL(None)


def long_c_call():
    # "ready" comes from this thread, immediately before the call: no other
    # thread asks for the GIL in between, so the call has begun when lu looks.
    print("ready", flush=True)
    libc.usleep(int(seconds * 1000000))  # holds the GIL throughout
    print("c-call-done", flush=True)


worker = threading.Thread(target=long_c_call, daemon=True)
worker.start()
worker.join()
time.sleep(3600)
