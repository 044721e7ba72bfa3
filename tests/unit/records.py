"""The log records tests feed to the report reader, built one way (the shapes payloads/recorder.py writes)."""

from __future__ import annotations

from typing import Any, Dict, List

MS = 1_000_000  # nanoseconds in a millisecond
PID = 4510


def header(pid: int = PID) -> Dict[str, Any]:
    return {"lu": 1, "type": "header", "pid": pid, "python": "3.11.7", "argv": ["app.py"], "started": 1.0}


def calls(nodes: List[Dict[str, Any]], thread: str = "MainThread", thread_id: int = 1) -> Dict[str, Any]:
    """One thread's call tree of session 1, its nodes named by their whole path."""
    return {
        "lu": 1,
        "type": "calls",
        "pid": PID,
        "session": "1",
        "thread": thread,
        "thread_id": thread_id,
        "time": 1.0,
        "nodes": nodes,
    }


def node(path: str, hits: int, ms: float) -> Dict[str, Any]:
    """A call node: `path` is "outer/inner/leaf"."""
    return {"path": path.split("/"), "hits": hits, "total_ns": int(ms * MS)}
