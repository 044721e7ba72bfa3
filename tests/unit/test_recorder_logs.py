"""A process's log file: one left by an earlier process with the same pid is set aside, never taken as this one's."""

from __future__ import annotations

import json
import os

from lu_payloads import procinfo
from lu_payloads.recorder import LogFile


def header(start_ticks: int) -> str:
    return json.dumps({"lu": 1, "type": "header", "pid": os.getpid(), "start_ticks": start_ticks}) + "\n"


def test_a_log_of_an_earlier_process_with_this_pid_is_set_aside(tmp_path):
    tmp_path.chmod(0o700)
    earlier = tmp_path / ("lu-%d.jsonl" % os.getpid())
    earlier.write_text(header(procinfo.start_ticks() - 1) + '{"lu": 1, "type": "session", "session": "1"}\n')
    log = LogFile(str(tmp_path))
    try:
        assert not earlier.exists()
        (aside,) = [p for p in tmp_path.iterdir() if p.name.startswith("lu-%d." % os.getpid())]
        assert aside.name.endswith(".jsonl") and '"session": "1"' in aside.read_text()
    finally:
        log.close()


def test_this_processs_own_log_goes_on(tmp_path):
    tmp_path.chmod(0o700)
    own = tmp_path / ("lu-%d.jsonl" % os.getpid())
    own.write_text(header(procinfo.start_ticks()))
    log = LogFile(str(tmp_path))
    try:
        assert [p.name for p in tmp_path.iterdir()] == [own.name]
    finally:
        log.close()
