"""A Python process whose main thread holds a known vector and x87 state across a blocking read.

    python vectors.py LIBRARY [FUNCTION]

LIBRARY is tests/targets/native/vectors.c compiled; its hold_vectors(fd)
waits in read(2) on a pipe with ymm0-ymm15, MXCSR and the x87 control word
set to a pattern, and counts what changed when the read returns (or
vectors512.c's hold_avx512: zmm0-zmm31 and k1-k7, as FUNCTION). Prints
"ready PID WRITE_FD" (the test writes a byte through /proc/PID/fd/WRITE_FD),
then "vectors intact" or "vectors WRONG N" after each wait.
"""

import ctypes
import os
import sys

library = ctypes.CDLL(sys.argv[1])  # CDLL: the GIL is released while the thread waits
hold = getattr(library, sys.argv[2] if len(sys.argv) > 2 else "hold_vectors")
read_end, write_end = os.pipe()
print("ready", os.getpid(), write_end, flush=True)
while True:
    changed = hold(read_end)
    print("vectors intact" if changed == 0 else "vectors WRONG %d" % changed, flush=True)
