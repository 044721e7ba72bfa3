"""The `lu` command: registers the subcommands and turns every failure into one line.

A traceback shown to a user is a bug, so the group catches everything: lu's
own errors print their message, anything unexpected prints one line naming
it (set LU_DEBUG=1 to see the traceback while developing lu).
"""

from __future__ import annotations

import functools
import importlib
import os
import signal
import sys
import traceback
from typing import Any, List, Optional

import click

from lu_attach.errors import LuAttachError, Stopped

from .output import printable, say_announced, take_announced


def _stop_on(signum: int, frame: object) -> None:
    raise Stopped(signum)


class LuGroup(click.Group):
    """lu's commands, each imported when it is asked for: `lu report` need not import the tools, the engine
    and the injection methods the other commands use (300 ms of start-up, when every run imported them all)."""

    def list_commands(self, ctx: click.Context) -> List[str]:
        return sorted(set(COMMANDS) | {command.name for command in _tool_commands() if command.name})

    def get_command(self, ctx: click.Context, cmd_name: str) -> Optional[click.Command]:
        if cmd_name in COMMANDS:
            command: click.Command = importlib.import_module(".commands." + cmd_name, __package__).command
            return command
        return next((command for command in _tool_commands() if command.name == cmd_name), None)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except LuAttachError as exc:
            _fail(str(exc), 1)
        except Stopped as stopped:
            _fail("stopped by %s" % signal.Signals(stopped.signum).name, 128 + stopped.signum)
        except KeyboardInterrupt:
            _fail("interrupted", 130)
        except BrokenPipeError:
            sys.exit(0)
        except Exception as exc:
            if os.environ.get("LU_DEBUG"):
                traceback.print_exc()
            _fail("internal error: %s: %s (set LU_DEBUG=1 for details)" % (type(exc).__name__, exc), 2)


def _fail(message: str, code: int) -> None:
    line = message.strip().splitlines()[0] if message.strip() else ""
    for done in take_announced():  # one line, even when lu had already done something on the way
        line += "; on the way, lu %s" % done.replace("lu: ", "", 1)
    click.echo("lu: error: %s" % printable(line, one_line=True) if line else "lu: error", err=True)
    sys.exit(code)


@click.group(cls=LuGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lu-attach", prog_name="lu")
def cli() -> None:
    """lu: change a running Python process without stopping it."""


# In the order `lu --help` lists them (the README's table); then the commands tools declare.
COMMANDS = (
    "ps",
    "attach",
    "inject",
    "profile",
    "debug",
    "events",
    "patch",
    "ls",
    "revert",
    "report",
    "sample",
    "watch",
    "detach",
)


@functools.lru_cache(maxsize=1)
def _tool_commands() -> List[click.Command]:
    """The commands tools declare (payloads/tools/registry.py), unless lu has a command of that name (made once:
    `lu --help` asks for the list, then for each command)."""
    from .commands.tools import commands  # lazy: the tool registry imports the engine; only its commands need it

    return commands(COMMANDS)


def main() -> None:
    """Run `lu`; a mistake on the command line is one line too (click would print its usage first)."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _stop_on)
    try:
        code = cli.main(args=sys.argv[1:] or ["--help"], prog_name="lu", standalone_mode=False)
    except click.UsageError as exc:
        hint = " (see `%s -h`)" % exc.ctx.command_path if exc.ctx is not None else ""
        _fail(exc.format_message() + hint, exc.exit_code)
    except click.ClickException as exc:
        _fail(exc.format_message(), exc.exit_code)
    except click.exceptions.Abort:
        _fail("interrupted", 130)
    say_announced()  # a command that printed nothing still says what it did on the way
    _leave(code if isinstance(code, int) else 0)


def _leave(code: int) -> None:
    """Exit without the interpreter's teardown, once the command is done and said so.

    Tearing down the 250-odd modules a command imports, and collecting their objects, took 30-50 ms of
    CPU after `lu inject` had its answer: on the host, just as the target ran lu's bootstrap, and a
    process that busy beside a target lengthens its threads' waits on a machine of few cores
    (bench/host_cpu.py). The exit handlers still run and the output is flushed; where a thread that is
    not a daemon still runs, the interpreter's own exit waits for it as usual."""
    import threading  # lazy: (already imported by then; threading is not a concern before)

    if any(not thread.daemon for thread in threading.enumerate() if thread is not threading.main_thread()):
        sys.exit(code)
    try:
        import atexit  # lazy: only here

        atexit._run_exitfuncs()
    except Exception:
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            code = code or 1  # (a closed pipe: the interpreter's exit would have said so, then exited 120)
    os._exit(code)


if __name__ == "__main__":
    main()
