"""A thread sits in a library's slow constructor (holding the dynamic loader's lock); prints "ready".

argv[1] is the library. The main thread waits for that thread, then prints
"loaded" and sleeps: a call into the main thread meanwhile that needs the
loader (dlopen) has to wait for the constructor.
"""
import ctypes
import sys
import threading
import time

worker = threading.Thread(target=lambda: ctypes.CDLL(sys.argv[1]))
print("ready", flush=True)
worker.start()
worker.join()
print("loaded", flush=True)
time.sleep(3600)
