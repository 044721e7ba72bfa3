"""A Python process whose main thread holds a known vector and x87 state across a blocking read.

    python vectors.py LIBRARY

LIBRARY is tests/targets/native/vectors.c compiled; its hold_vectors(fd)
waits in read(2) on a pipe with ymm0-ymm15, MXCSR and the x87 control word
set to a pattern, and counts what changed when the read returns. Prints
"ready PID WRITE_FD" (the test writes a byte through /proc/PID/fd/WRITE_FD),
then "vectors intact" or "vectors WRONG N" after each wait.
"""

import ctypes
import os
import sys

library = ctypes.CDLL(sys.argv[1])  # CDLL: the GIL is released while the thread waits
read_end, write_end = os.pipe()
print("ready", os.getpid(), write_end, flush=True)
while True:
    changed = library.hold_vectors(read_end)
    print("vectors intact" if changed == 0 else "vectors WRONG %d" % changed, flush=True)
