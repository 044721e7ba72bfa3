"""What the floor benchmarks (monitoring_floor.py, woven_floor.py) share: the interpreters, and one row each.

Each floor benchmark runs a child script in every interpreter; the child
prints one JSON object of figures (ns added per call) with its version.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
from typing import Iterator, List, Optional, Sequence, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def interpreters(since_minor: int) -> List[str]:
    """pyenv's 3.<since_minor> and newer, then the 3.14 and 3.15 that scripts/pythons.sh makes."""
    found = [
        path
        for path in glob.glob(os.path.expanduser("~/.pyenv/versions/3.*/bin/python3.*[0-9]"))
        if int(os.path.basename(path).split(".")[1]) >= since_minor
    ]
    found.sort(key=lambda p: tuple(int(x) for x in os.path.basename(p)[len("python") :].split(".")))
    for rel in ("py3.14/usr/bin/python3.14", "py3.15/usr/bin/python3.15"):
        exe = os.path.join(REPO, ".cache", "pythons", rel)
        if os.path.exists(exe):
            found.append(exe)
    return found


def rows(pythons: Sequence[str], child: str, argv: Sequence[str]) -> Iterator[Tuple[str, Optional[dict], str]]:
    """(python, its figures or None, why not) for each interpreter, running `child` with `argv` in it."""
    for python in pythons:
        got = subprocess.run([python, "-c", child, *argv], capture_output=True, text=True, timeout=900)
        if got.returncode != 0:
            yield python, None, (got.stderr.strip().splitlines() or ["failed"])[-1]
            continue
        yield python, json.loads(got.stdout), ""
