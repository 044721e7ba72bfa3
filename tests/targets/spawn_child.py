"""A Python parent that starts another interpreter as its child: `spawn_child.py CHILD_PYTHON`.

Prints "ready <pid> <child pid>" once the child runs (it sleeps).
"""

import os
import subprocess
import sys
import time

child = subprocess.Popen([sys.argv[1], "-c", "import time\nwhile True: time.sleep(1)"])
time.sleep(0.3)
print("ready", os.getpid(), child.pid, flush=True)
try:
    while True:
        time.sleep(1)
finally:
    child.kill()
