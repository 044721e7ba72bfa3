"""A hot loop on demand: `hot_burst.py FLAG COUNT`; once FLAG exists, calls hot() COUNT times as fast as it can.

Prints "ready", and "done" after the burst, so a test knows exactly how many
calls (and so how many debug events) there were while it debugged hot().
"""

import os
import sys
import time

flag, count = sys.argv[1], int(sys.argv[2])


def hot(i):
    return i + 1


print("ready", flush=True)
while not os.path.exists(flag):
    time.sleep(0.01)
for i in range(count):
    hot(i)
print("done", flush=True)
while True:
    time.sleep(1)
