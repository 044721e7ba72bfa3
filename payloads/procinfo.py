"""Facts about this process that identify it: its start time, as the kernel and psutil tell it."""

from __future__ import annotations

import os


def start_ticks() -> int:
    """This process's start time in clock ticks after boot: with the pid, it names the process for good."""
    try:
        with open("/proc/self/stat") as handle:
            return int(handle.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return 0


def create_time() -> float:
    """Start time of this process in seconds since the epoch, as psutil reports it."""
    try:
        ticks = start_ticks()
        with open("/proc/stat") as handle:
            for line in handle:
                if line.startswith("btime"):
                    return int(line.split()[1]) + ticks / float(os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        pass
    return 0.0
