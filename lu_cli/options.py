"""Option callbacks shared by several commands."""

from __future__ import annotations

import os
from typing import Optional

import click


def absolute_log_dir(ctx: click.Context, param: click.Parameter, value: Optional[str]) -> Optional[str]:
    """--log-dir as an absolute path: the target must not resolve it against its own working directory."""
    return os.path.abspath(value) if value else None
