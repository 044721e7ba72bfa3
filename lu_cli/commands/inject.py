"""`lu inject PID`: start the agent in a process, print where it listens."""

from dataclasses import asdict

import click

from lu_attach.group import Tree
from lu_attach.inject import METHOD_CHOICES, inject

from .. import tree_output
from ..options import tree_option
from ..output import echo, print_json

COMPILED_WHERE = {
    "subinterpreter": "in a subinterpreter (the program's threads did not wait)",
    "agent thread": "in the agent's thread",
    "import": "as they were imported",
}


@click.command("inject", short_help="Start lu's agent in the process.")
@click.argument("pid", type=int)
@click.option("--timeout", default=10.0, show_default=True, help="Seconds to wait for the agent to start.")
@click.option(
    "--method",
    type=click.Choice(list(METHOD_CHOICES)),
    default="auto",
    show_default=True,
    help="How to get in. auto: remote-exec on Python 3.14 and later (PEP 768: nothing is stopped), else ptrace. "
    "ptrace: lu's own call, one thread stopped for well under a millisecond. "
    "gdb: the same calls made through gdb, which stops every thread (only when asked).",
)
@click.option("--json", "as_json", is_flag=True)
@tree_option()
def command(pid: int, timeout: float, method: str, as_json: bool, tree: bool) -> None:
    """Inject the agent into PID (no code change in the target needed)."""
    if tree:
        with Tree.open(pid, timeout=timeout, method=method) as group:
            members = group.pids
        if as_json:
            print_json({"root": pid, "processes": members})
        else:
            echo(
                "agents run in %s of the tree of %d (%s); workers it forks from now on start their own"
                % (tree_output.processes(len(members)), pid, tree_output.pids(members))
            )
        return
    result = inject(pid, timeout=timeout, method=method)
    if as_json:
        print_json(asdict(result))
    elif result.already_running:
        echo("agent already running in process %d, listening on %s" % (pid, result.socket))
    else:
        # (the injection opened the agent's door: the agent's modules load when the first command connects)
        echo("agent listening in process %d on %s (it loads at the first command)" % (pid, result.socket))
        if result.thread is None:
            how = "%s, no thread stopped, %.0f ms in all" % (result.method, result.total_ms or 0)
        else:
            how = "%s, thread %s stopped %.1f ms, %.0f ms in all" % (
                result.method,
                result.thread,
                result.pause_ms or 0,
                result.total_ms or 0,
            )
        if result.compiled is not None:
            how += "; %d of lu's modules compiled for this Python, %s" % (
                result.compiled.modules,
                COMPILED_WHERE.get(result.compiled.where, result.compiled.where),
            )
        echo("(%s)" % how, err=True)
