"""Inject into one target from forked children, killing each child at a chosen moment.

Run by tests/test_kill_safety.py as `python kill_driver.py PID SCENARIOS`, with
SCENARIOS a JSON list of {"sig": N} (and optionally {"method": NAME}) plus either {"at": [function, event, nth]}
(the child kills itself when its injector reaches that point: a function's
"call" or "return", the nth time) or {"after": seconds} (the parent kills the
child after that long). Prints one JSON list: for each scenario, whether the
kill point was reached and how the child ended. The target's survival is the
test's to check.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lu_attach import inject


def die_at(function, event, nth, sig):
    seen = [0]

    def tracer(frame, what, arg):
        if frame.f_code.co_name == function and what == event:
            seen[0] += 1
            if seen[0] == nth:
                os.kill(os.getpid(), sig)  # a SIGHUP held off by the injector arrives when it is let through
        return tracer

    sys.settrace(tracer)


def run(pid, scenario):
    child = os.fork()
    if child == 0:
        if "at" in scenario:
            die_at(*scenario["at"], scenario["sig"])
        try:
            # the kill points are the chosen method's steps (lu's ptrace call unless the scenario names one)
            inject.inject(pid, timeout=5.0, method=scenario.get("method", "ptrace"))
        except BaseException:
            pass
        sys.settrace(None)
        os._exit(0)
    if "after" in scenario:
        time.sleep(scenario["after"])
        try:
            os.kill(child, scenario["sig"])
        except ProcessLookupError:
            pass
    _, status = os.waitpid(child, 0)
    return {"killed": os.WIFSIGNALED(status), "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None}


def main():
    pid = int(sys.argv[1])
    results = [run(pid, scenario) for scenario in json.loads(sys.argv[2])]
    print(json.dumps(results))


if __name__ == "__main__":
    main()
