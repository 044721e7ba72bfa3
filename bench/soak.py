"""Soak: thousands of attach/detach and profile/revert cycles on a served target, and what they leave behind.

Two copies of the same threaded HTTP service run side by side, each under the
same light load (one client thread). lu attaches to and detaches from one of
them over and over, then profiles and reverts over and over; the other is
left alone: its drift over the same time is the baseline. Printed: RSS,
mappings, open descriptors and threads of both before, at checkpoints and
after; the recorder's sessions and the time of one recorder flush; requests
served and failed.

    .venv/bin/python bench/soak.py                  # 10,000 + 10,000 cycles, pyenv 3.11
    .venv/bin/python bench/soak.py --cycles 1000 --python /usr/bin/python3
    .venv/bin/python bench/soak.py --json

Goal (issue: "nothing grows with use"): flat within 2 MB, 0 failed requests.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
sys.path.insert(0, os.path.dirname(HERE))

from conftest import Target  # noqa: E402
from growth import Footprint, Load, inject_detach_cycle, profile_revert_cycles, settle  # noqa: E402


def default_python() -> str:
    found = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.11.*/bin/python3.11")))
    return found[-1] if found else "/usr/bin/python3"


def row(label: str, lu: Footprint, base: Footprint, start_lu: Footprint, start_base: Footprint) -> dict:
    return {
        "at": label,
        "lu_rss_kb": lu.rss_kb - start_lu.rss_kb,
        "baseline_rss_kb": base.rss_kb - start_base.rss_kb,
        "lu_maps": lu.maps - start_lu.maps,
        "baseline_maps": base.maps - start_base.maps,
        "lu_fds": lu.fds - start_lu.fds,
        "baseline_fds": base.fds - start_base.fds,
        "lu_threads": lu.threads - start_lu.threads,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=default_python())
    parser.add_argument("--cycles", type=int, default=10000, help="attach/detach cycles, and as many profile/revert")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    lu_target = Target(args.python, "http_server.py")
    baseline = Target(args.python, "http_server.py")
    loads = [Load(int(t.ready_line.split()[1])) for t in (lu_target, baseline)]
    rows = []
    try:
        for _ in range(10):  # lu's code and helper load once; then measure
            inject_detach_cycle(lu_target.pid)
        profile_revert_cycles(lu_target.pid, 10)
        inject_detach_cycle(lu_target.pid)
        settle(lu_target.pid)
        start_lu, start_base = Footprint.quiet(lu_target.pid), Footprint.quiet(baseline.pid)

        def now(label: str) -> dict:
            """Both targets' footprints against where they started."""
            return row(label, Footprint.quiet(lu_target.pid), Footprint.quiet(baseline.pid), start_lu, start_base)

        started = time.monotonic()
        step = max(1, args.cycles // 5)
        for i in range(1, args.cycles + 1):
            inject_detach_cycle(lu_target.pid)
            if i % step == 0:
                settle(lu_target.pid)
                rows.append(now("%d attach/detach" % i))
                print(rows[-1], file=sys.stderr)
        attach_seconds = time.monotonic() - started
        started = time.monotonic()
        recorder = {}
        for done in range(step, args.cycles + 1, step):
            recorder = profile_revert_cycles(lu_target.pid, step)
            rows.append(now("%d profile/revert" % done))
            print(rows[-1], recorder, file=sys.stderr)
        inject_detach_cycle(lu_target.pid)
        settle(lu_target.pid)
        profile_seconds = time.monotonic() - started
        end = now("end")
    finally:
        for load in loads:
            load.stop()
        alive = lu_target.alive()
        lu_target.kill()
        baseline.kill()
    result = {
        "python": args.python,
        "cycles": args.cycles,
        "rows": rows,
        "end": end,
        "recorder": recorder,
        "attach_detach_ms_per_cycle": attach_seconds * 1000 / args.cycles,
        "profile_revert_ms_per_cycle": profile_seconds * 1000 / args.cycles,
        "requests": [load.done for load in loads],
        "failed": [len(load.failures) for load in loads],
        "target_alive": alive,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        "soak on %s: %d attach/detach cycles (%.1f ms each) and %d profile/revert cycles (%.1f ms each)"
        % (
            args.python,
            args.cycles,
            result["attach_detach_ms_per_cycle"],
            args.cycles,
            result["profile_revert_ms_per_cycle"],
        )
    )
    print("| after | RSS lu target | RSS baseline | maps lu / baseline | fds lu / baseline | threads lu |")
    print("|---|---|---|---|---|---|")
    for r in rows + [end]:
        print(
            "| %s | %+d KB | %+d KB | %+d / %+d | %+d / %+d | %+d |"
            % (
                r["at"],
                r["lu_rss_kb"],
                r["baseline_rss_kb"],
                r["lu_maps"],
                r["baseline_maps"],
                r["lu_fds"],
                r["baseline_fds"],
                r["lu_threads"],
            )
        )
    print("recorder after the profile/revert cycles: %s" % recorder)
    print(
        "requests served (lu target / baseline): %s, failed: %s; lu target alive: %s"
        % (result["requests"], result["failed"], alive)
    )
    print(
        "RSS growth beyond the baseline's: %+d KB (goal: within 2048 KB)" % (end["lu_rss_kb"] - end["baseline_rss_kb"])
    )


if __name__ == "__main__":
    main()
