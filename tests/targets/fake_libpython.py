"""Maps a file named like a libpython, then swaps it (argv[1]: "fifo" or "garbage"); prints "ready".

What `lu ps` reads to tell a Python process from others comes from the
process's own map; this one's user made that file a trap.
"""
import mmap
import os
import sys
import time

directory = "/tmp/fake-lib"
os.makedirs(directory, exist_ok=True)
path = os.path.join(directory, "libpython3.99.so.1.0")
with open(path, "wb") as handle:
    handle.write(b"\x7fELF" + os.urandom(8188))  # an ELF magic, then garbage
with open(path, "rb") as handle:
    mapped = mmap.mmap(handle.fileno(), 0, prot=mmap.PROT_READ)
if sys.argv[1] == "fifo":
    os.unlink(path)
    os.mkfifo(path + " (deleted)")  # the name the map now shows for the mapped file
print("ready", flush=True)
time.sleep(3600)
