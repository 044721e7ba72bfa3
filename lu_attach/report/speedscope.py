"""speedscope's file format (https://www.speedscope.app/file-format-schema.json).

One ``sampled`` profile per process and thread, named ``pid 4510 / MainThread``,
unit ``nanoseconds``.  An aggregated call tree has no timeline, so each unique
call path is one sample weighted by its self time (paths with no self time are
left out); ``startValue`` is 0 and ``endValue`` the sum of the weights.  For a
sampled report the weights are estimated times (samples / rate).
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Tuple

from .model import Report, self_paths

SCHEMA = "https://www.speedscope.app/file-format-schema.json"


def to_speedscope(report: Report, name: str = "lu report") -> Dict[str, Any]:
    frames: List[Dict[str, Any]] = []
    index: Dict[Tuple[Any, ...], int] = {}
    profiles: List[Dict[str, Any]] = []
    for t in report.threads():
        samples: List[List[int]] = []
        weights: List[int] = []
        stack: List[int] = []
        for path, node, self_ns in self_paths(t.roots):
            key = (node.function, node.file, node.line)
            i = index.get(key)
            if i is None:
                i = index[key] = len(frames)
                frame: Dict[str, Any] = {"name": node.function}
                if node.file:
                    frame["file"] = node.file
                if node.line is not None:
                    frame["line"] = node.line
                frames.append(frame)
            del stack[len(path) - 1 :]
            stack.append(i)
            if self_ns > 0:
                samples.append(list(stack))
                weights.append(self_ns)
        profiles.append(
            {
                "type": "sampled",
                "name": t.label,
                "unit": "nanoseconds",
                "startValue": 0,
                "endValue": sum(weights),
                "samples": samples,
                "weights": weights,
            }
        )
    return {
        "$schema": SCHEMA,
        "shared": {"frames": frames},
        "profiles": profiles,
        "name": f"{name}: {report.kind}",
        "activeProfileIndex": 0,
        "exporter": "lu",
    }


def render_speedscope(report: Report, name: str = "lu report") -> str:
    """Compact JSON, ASCII only so that it survives a terminal's escaping intact (as :func:`.jsonout.render_json`)."""
    return json.dumps(to_speedscope(report, name), separators=(",", ":")) + "\n"
