"""Options several commands share, declared once: what they mean, how they are checked."""

from __future__ import annotations

import os
from typing import Callable, Optional, TypeVar

import click

from lu_attach.errors import LuAttachError

F = TypeVar("F", bound=Callable[..., object])


def absolute_log_dir(ctx: click.Context, param: click.Parameter, value: Optional[str]) -> Optional[str]:
    """--log-dir as an absolute path: the target must not resolve it against its own working directory."""
    return os.path.abspath(value) if value else None


def _positive_seconds(ctx: click.Context, param: click.Parameter, value: Optional[float]) -> Optional[float]:
    if value is not None and not value > 0:
        raise LuAttachError("--duration must be a positive number of seconds")
    return value


def duration_option(help: str, default: Optional[float] = None) -> Callable[[F], F]:
    """--duration S: a positive number of seconds (one clear line otherwise)."""
    return click.option(
        "--duration",
        type=float,
        default=default,
        show_default=default is not None,
        callback=_positive_seconds,
        help=help,
    )


def log_dir_option() -> Callable[[F], F]:
    """--log-dir D: where the target writes this session's log."""
    return click.option(
        "--log-dir",
        type=click.Path(file_okay=False, path_type=str),
        callback=absolute_log_dir,
        help="A directory of the target's user where it writes this session's own log, lu-PID-SESSION.jsonl"
        " (relative to here).",
    )


def echo_events_option() -> Callable[[F], F]:
    """--echo: the target also prints the session's events on its own stderr."""
    return click.option("--echo", "echo_events", is_flag=True, help="Also echo events to the target's own stderr.")


def tree_option() -> Callable[[F], F]:
    """--tree: the process and every Python process below it, as one."""
    return click.option(
        "--tree",
        is_flag=True,
        help="Act on PID and every Python process below it (a master and its workers) as one.",
    )


def follow_option() -> Callable[[F], F]:
    """--follow: with --tree, processes that join the tree while lu runs are brought in too."""
    return click.option(
        "--follow",
        is_flag=True,
        help="With --tree: bring in processes that join the tree while lu runs (spawned workers, restarts).",
    )


def json_option() -> Callable[[F], F]:
    """--json: what the command did, as JSON on stdout (for scripts)."""
    return click.option("--json", "as_json", is_flag=True, help="Print what was done as JSON.")
