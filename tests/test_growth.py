"""Nothing grows with use: attach/detach and profile/revert cycles on a served target leave it as it was.

A few hundred cycles here (100 attach/detach, 200 profile/revert) (bench/soak.py runs ten thousand). The figures are
printed (pytest -s shows them) and bounded: memory within 2 MB, no
descriptor or thread left behind, no mapping beyond the C library's own
caches, no session kept by the recorder, and not a single failed request.
"""

from __future__ import annotations

import pytest
from conftest import SYSTEM_PYTHON
from growth import Footprint, Load, inject_detach_cycle, profile_revert_cycles, settle
from interpreters import ALL

CYCLES = 100


@pytest.mark.parametrize("python", [p for p in ALL if "3.8" in p.id or "system" in p.id] or [SYSTEM_PYTHON])
def test_attach_detach_and_profile_revert_cycles_leave_nothing(python, start_target):
    target = start_target(python, "http_server.py")
    load = Load(int(target.ready_line.split()[1]))
    try:
        for _ in range(10):  # the first cycles load lu's code and the helper: that stays, once
            inject_detach_cycle(target.pid)
        profile_revert_cycles(target.pid, 10)
        inject_detach_cycle(target.pid)
        settle(target.pid)
        before = Footprint.quiet(target.pid)
        for _ in range(CYCLES):
            inject_detach_cycle(target.pid)
        recorder = profile_revert_cycles(target.pid, 2 * CYCLES)
        inject_detach_cycle(target.pid)
        settle(target.pid)
        after = Footprint.quiet(target.pid)
    finally:
        load.stop()
    print(
        "\n%d attach/detach and %d profile/revert cycles: RSS %+d KB, maps %+d, fds %+d, threads %+d; "
        "recorder %s; %d requests, %d failed"
        % (
            CYCLES,
            2 * CYCLES,
            after.rss_kb - before.rss_kb,
            after.maps - before.maps,
            after.fds - before.fds,
            after.threads - before.threads,
            recorder,
            load.done,
            len(load.failures),
        )
    )
    assert not load.failures, load.failures[:3]
    assert load.done > 50
    assert recorder["sessions"] == 0 and recorder["last_written"] == 0, recorder
    # The C library's own caches may add a mapping or two once (a malloc arena, a cached thread
    # stack); a leak would add some for every cycle (lu used to leave five per injection).
    assert after.maps - before.maps <= 4, (before, after)
    assert after.fds - before.fds <= 0, (before, after)
    assert after.threads - before.threads <= 0, (before, after)
    assert after.rss_kb - before.rss_kb < 2048, (before, after)
