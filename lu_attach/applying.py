"""Applying an update the user watches: progress while the target prepares it, and Ctrl-C to cancel it first.

A large update (thousands of functions) takes the target seconds to
prepare. lu asks for it as a `watched` request (lu_payloads/watched.py): the
agent reports how many functions it has prepared, which `on_progress` shows,
and Ctrl-C sends `cancel` on a connection of its own (this one waits for the
reply, and a KeyboardInterrupt in the middle of reading it would cut the
connection's framing). The target stops before it swaps any code and
answers that nothing was applied. A press that comes too late, when the
update had applied already, is honoured too: lu reverts it, and says so.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

from .client import AgentClient
from .errors import LuAttachError
from .profiling import signals_held
from .runtime import connect_socket
from .signals import CtrlCPresses

CANCEL_TIMEOUT = 5.0


class Cancelled(LuAttachError):
    """The user stopped the update (Ctrl-C); str() says whether anything was left applied (nothing is)."""


@dataclass(frozen=True)
class Progress:
    """How far the target is in preparing an update."""

    done: int
    total: int


def apply_watched(
    client: AgentClient, op: str, args: Dict[str, Any], on_progress: Optional[Callable[[Progress], None]] = None
) -> Any:
    """client.request(op, **args), watched: progress to on_progress, Ctrl-C cancels (Cancelled)."""
    token = secrets.token_hex(8)
    if on_progress is not None:
        report = on_progress
        client.on_progress = lambda event: report(Progress(int(event.get("done", 0)), int(event.get("total", 0))))

    def cancel_once(count: int) -> None:
        if count == 1:
            try:
                _send_cancel(client, token)
            except LuAttachError:
                pass  # the target answers the request anyway; what applied is reverted then

    presses = CtrlCPresses(on_press=cancel_once)  # a KeyboardInterrupt mid-reply would cut the framing
    try:
        with presses:
            try:
                result = client.request("watched", request=op, args=args, token=token)
            except LuAttachError as exc:
                if "unknown request 'watched'" in str(exc):  # an agent from before watched requests
                    return client.request(op, **args)
                if presses.count:
                    raise Cancelled("interrupted: %s" % exc)
                raise
    finally:
        client.on_progress = None
    if presses.count:
        ids: List[int] = list(result.get("ids") or []) if isinstance(result, dict) else []
        if ids:
            with signals_held():
                client.request("revert", ids=ids)
        raise Cancelled(
            "interrupted: the update had applied before the cancel reached the target; %s"
            % ("reverted update %s" % ", ".join(map(str, ids)) if ids else "it left nothing applied")
        )
    return result


def _send_cancel(client: AgentClient, token: str) -> str:
    """Ask the agent, on a connection of its own, to cancel the watched request of `token`."""
    target = client.target
    if target is None:
        raise LuAttachError("no verified target to send the cancel to")
    sock = connect_socket(target, timeout=CANCEL_TIMEOUT)
    with AgentClient(sock, timeout=CANCEL_TIMEOUT, expect=target) as side:
        return str(side.request("cancel", token=token))
