"""Measure what a target holds (memory, mappings, descriptors, the recorder's sessions) around many cycles.

Shared by tests/test_growth.py (a few hundred cycles, with bounds) and
bench/soak.py (ten thousand, with the figures printed).
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.request
from dataclasses import dataclass
from typing import Callable, List

from lu_attach.inject import inject
from lu_attach.session import connect


@dataclass
class Footprint:
    rss_kb: int
    maps: int
    fds: int
    threads: int

    @classmethod
    def quiet(cls, pid: int, samples: int = 30) -> Footprint:
        """The smallest figures over a short while: a served target's request threads come and go."""
        seen = [cls.of(pid)]
        for _ in range(samples - 1):
            time.sleep(0.01)
            seen.append(cls.of(pid))
        return cls(
            rss_kb=min(f.rss_kb for f in seen),
            maps=min(f.maps for f in seen),
            fds=min(f.fds for f in seen),
            threads=min(f.threads for f in seen),
        )

    @classmethod
    def of(cls, pid: int) -> Footprint:
        rss = 0
        with open("/proc/%d/status" % pid) as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
        with open("/proc/%d/maps" % pid) as handle:
            maps = sum(1 for _ in handle)
        return cls(
            rss_kb=rss,
            maps=maps,
            fds=len(os.listdir("/proc/%d/fd" % pid)),
            threads=len(os.listdir("/proc/%d/task" % pid)),
        )


class Load:
    """Requests against an http_server.py target from one thread; every failure is kept."""

    def __init__(self, port: int):
        self.port = port
        self.done = 0
        self.failures: List[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/x" % self.port, timeout=10) as response:
                    json.loads(response.read())
                self.done += 1
            except Exception as exc:
                self.failures.append(repr(exc))
            time.sleep(0.005)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)


def inject_detach_cycle(pid: int) -> None:
    inject(pid, timeout=20)
    with connect(pid) as client:
        client.request("detach")


def settle(pid: int) -> None:
    """Let threads of a detached agent end and the allocator settle before measuring."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and Footprint.of(pid).threads > 2:
        time.sleep(0.05)
    time.sleep(0.2)


def profile_revert_cycles(pid: int, cycles: int, on_cycle: Callable[[int], None] = lambda i: None) -> dict:
    """`cycles` profiles applied and reverted through one agent; returns the recorder's state after."""
    with connect(pid, inject_if_needed=True) as client:
        for i in range(cycles):
            result = client.request("profile", patterns=["__main__.price", "__main__.Handler.do_GET"])
            client.request("revert", ids=result["ids"])
            on_cycle(i)
        out = client.request(
            "exec",
            source=(
                "import time\n"
                "from lu_payloads.recorder import get_recorder\n"
                "r = get_recorder(); t = time.perf_counter(); r.flush()\n"
                "print(len(r.sessions), len(r._last_written), round((time.perf_counter() - t) * 1000, 3))\n"
            ),
        )
    sessions, written, flush_ms = out["output"].split()
    return {"sessions": int(sessions), "last_written": int(written), "flush_ms": float(flush_ms)}
