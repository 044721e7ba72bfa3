"""LineProfiler: hits and time of chosen lines of one function, per thread.

`hits` counts the times a line started; the time is summed over the
executions that completed normally (a line left by raise, break, continue
or return-from-inside is counted as a hit without time). For a compound
statement (`for`, `while`, `if`, `with`) the time covers its whole block.
"""
import os
import threading
import time


class LineSession(object):
    def __init__(self):
        self.session = None
        self.threads = []
        self._lock = threading.Lock()
        local = threading.local()
        clock = time.perf_counter_ns

        def new_state():
            state = ({}, {}, threading.current_thread())  # started, stats, thread
            local.state = state
            with self._lock:
                self.threads.append(state)
            return state

        def before(info, lineno):
            try:
                state = local.state
            except AttributeError:
                state = new_state()
            key = (info, lineno)
            stat = state[1].get(key)
            if stat is None:
                stat = state[1][key] = [0, 0]
            stat[0] += 1
            state[0][key] = clock()

        def after(info, lineno):
            now = clock()
            try:
                state = local.state
            except AttributeError:
                return
            started = state[0].pop((info, lineno), None)
            if started is not None:
                state[1][(info, lineno)][1] += now - started

        self.before = before
        self.after = after

    def points(self, lines):
        lines = tuple(lines)
        return [(("line_before", lines), (self.before, None)), (("line_after", lines), (self.after, None))]

    def snapshot(self):
        records = []
        for started, stats, thread in list(self.threads):
            lines = [{"function": info.name, "line": lineno, "hits": stat[0], "total_ns": stat[1]}
                     for (info, lineno), stat in sorted(list(stats.items()), key=lambda kv: kv[0][1])]
            if lines:
                records.append({"lu": 1, "type": "lines", "pid": os.getpid(), "session": str(self.session),
                                "thread": thread.name, "thread_id": thread.ident, "time": time.time(),
                                "lines": lines})
        return records
