"""A root process that forks a child (which stays root), then becomes `nobody` itself.

So `nobody` owns a process whose child it may not act on: a tree with a member
of another user. Prints "ready <pid> <child pid>".
"""

import ctypes
import os
import time

child = os.fork()
if child == 0:
    while True:
        time.sleep(1)
os.setgroups([])
os.setresgid(65534, 65534, 65534)
os.setresuid(65534, 65534, 65534)
ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE: its /proc files are nobody's again, as after an exec
print("ready", os.getpid(), child, flush=True)
try:
    while True:
        time.sleep(1)
finally:
    os.kill(child, 9)
