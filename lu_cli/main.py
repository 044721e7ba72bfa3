"""The `lu` command: registers the subcommands and turns every failure into one line.

A traceback shown to a user is a bug, so the group catches everything: lu's
own errors print their message, anything unexpected prints one line naming
it (set LU_DEBUG=1 to see the traceback while developing lu).
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from typing import Any

import click

from lu_attach.errors import LuAttachError

from .commands.tools import commands as tool_commands
from .output import printable


class LuGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except LuAttachError as exc:
            _fail(str(exc), 1)
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
    "patch",
    "ls",
    "revert",
    "report",
    "sample",
    "watch",
    "detach",
)
for _name in COMMANDS:
    cli.add_command(importlib.import_module(".commands." + _name, __package__).command)
for _command in tool_commands(COMMANDS):
    cli.add_command(_command)


def main() -> None:
    cli(prog_name="lu")


if __name__ == "__main__":
    main()
