"""`lu attach PID`: inject if needed, then the interactive controller."""

import click

from lu_attach.session import connect


@click.command("attach")
@click.argument("pid", type=int)
@click.option("--timeout", default=10.0, show_default=True, help="Seconds to wait for the agent to start.")
def command(pid: int, timeout: float) -> None:
    """Open a Python prompt whose statements run inside PID."""
    from ..controller import run_controller  # lazy: jedi takes 0.15 s to import; only attach needs it

    with connect(pid, inject_if_needed=True, timeout=timeout) as client:
        run_controller(client, pid)
