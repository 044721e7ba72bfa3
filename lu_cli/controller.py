"""The interactive controller of `lu attach`: a Python prompt whose statements run in the target."""

from __future__ import annotations

import codeop
import os
import re
import sys
import time
from types import ModuleType
from typing import Dict, List, Optional

from lu_attach import completion, runtime
from lu_attach.client import AgentClient
from lu_attach.errors import AgentGone, LuAttachError
from lu_attach.group import Tree

from . import tree_output
from .output import echo

try:
    import readline
except ImportError:  # a Python built without it: no line editing, everything else works
    readline = None  # type: ignore[assignment]

_PATCH_CALL = re.compile(r"""^\s*patch\(\s*(['"])(.+?)\1\s*\)\s*$""")
HISTORY = os.path.join(os.path.expanduser("~"), ".lu_history")


def _setup_readline(client: AgentClient) -> Optional[ModuleType]:
    if readline is None:
        return None
    try:
        readline.read_history_file(HISTORY)
    except OSError:
        pass
    readline.set_history_length(2000)
    state: Dict[str, List[str]] = {"matches": []}

    def completer(text: str, index: int) -> Optional[str]:
        if index == 0:
            line = readline.get_line_buffer()[: readline.get_endidx()]
            try:
                full = completion.complete(client, line)
            except (LuAttachError, OSError):
                full = []
            state["matches"] = _to_readline_words(line, text, full)
        matches = state["matches"]
        return matches[index] if index < len(matches) else None

    readline.set_completer_delims(" \t\n`~!@#$%^&*()-=+[{]}\\|;:,<>/?'\"")
    readline.set_completer(completer)
    readline.parse_and_bind("tab: complete")
    return readline


def _to_readline_words(line: str, text: str, full: List[str]) -> List[str]:
    """Turn full dotted candidates into replacements for readline's current word."""
    # The dotted expression being completed ends the line; readline's word is its tail after delimiters.
    tail = re.search(r"[A-Za-z0-9_.*]*$", line)
    expr = tail.group(0) if tail else ""
    offset = len(expr) - len(text)
    return [c[offset:] for c in full if c.startswith(expr[:offset])]


def run_controller(client: AgentClient, pid: int, tree: Optional[Tree] = None) -> None:
    """The prompt; with `tree`, every statement runs in every process of it (client is its top's)."""
    info = client.request("info")
    readline = _setup_readline(client) if sys.stdin.isatty() else None
    if tree is None:
        echo(
            "lu controller: process %d, Python %s, agent %s. Statements run inside the target; "
            "help for the vocabulary, Ctrl-D to leave." % (pid, info["python"], info["agent_version"])
        )
    else:
        echo(
            "lu controller: the tree of %d (%d processes: %s), Python %s. Statements run in every one of them, "
            "each line of output prefixed with its pid; Ctrl-D to leave."
            % (pid, len(tree.pids), ", ".join(map(str, tree.pids)), info["python"])
        )
    compiler = codeop.CommandCompiler()
    try:
        while True:
            lines: List[str] = []
            prompt = ">>> "
            while True:
                try:
                    line = input(prompt) if sys.stdin.isatty() else _read_plain(prompt)
                except EOFError:
                    if lines:
                        break
                    echo("")
                    return
                except KeyboardInterrupt:
                    echo("\nKeyboardInterrupt")
                    lines = []
                    prompt = ">>> "
                    continue
                lines.append(line)
                source = "\n".join(lines)
                try:
                    complete = compiler(source, "<lu>", "single")
                except (SyntaxError, OverflowError, ValueError):
                    break  # let the target report it, with its own Python's message
                if complete is not None:
                    break
                prompt = "... "
            source = "\n".join(lines)
            if not source.strip():
                continue
            if tree is None:
                _execute(client, source, pid)
            else:
                _execute_in_tree(tree, source)
    finally:
        if readline is not None:
            try:
                readline.write_history_file(HISTORY)
            except OSError:
                pass


def _read_plain(prompt: str) -> str:
    line = sys.stdin.readline()
    if not line:
        raise EOFError
    return line.rstrip("\n")


def _read_patch(path: str) -> Optional[str]:
    """The text of a patch file named in `patch('...')`, or None after saying why it cannot be read."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as exc:
        echo("cannot read %s: %s" % (path, exc.strerror), err=True)
        return None


def _execute(client: AgentClient, source: str, pid: int) -> None:
    patch = _PATCH_CALL.match(source)
    try:
        if patch:
            path = os.path.expanduser(patch.group(2))
            text = _read_patch(path)
            if text is None:
                return
            ids = client.request("patch", source=text, filename=os.path.basename(path))
            echo("applied update%s %s" % ("s" if len(ids) != 1 else "", ", ".join(map(str, ids))))
            return
        result = client.request("exec", source=source)
    except AgentGone as exc:
        for _ in range(40):  # the socket closes a moment before the process is gone
            if runtime.process_gone(pid):
                raise LuAttachError("the target process %d exited" % pid)
            time.sleep(0.05)
        raise LuAttachError(str(exc))
    except LuAttachError as exc:
        echo(str(exc), err=True)
        return
    if result.get("output"):
        echo(result["output"], nl=False)
    if result.get("error"):
        echo(result["error"], err=True)


def _execute_in_tree(tree: Tree, source: str) -> None:
    """Run a statement in every member; show each one's output under its pid, in pid order."""
    patch = _PATCH_CALL.match(source)
    if patch:
        path = os.path.expanduser(patch.group(2))
        text = _read_patch(path)
        if text is None:
            return
        try:
            result = tree.patch(text, os.path.basename(path))
        except LuAttachError as exc:
            echo(str(exc), err=True)
            return
        for line in tree_output.patched(tree.root, result):
            echo(line)
        return
    outcomes = tree.each("exec", source=source)
    for pid in sorted(outcomes):
        outcome = outcomes[pid]
        if not outcome.ok:
            echo("%d| %s" % (pid, "exited" if outcome.gone else outcome.error), err=True)
            continue
        for key, err in (("output", False), ("error", True)):
            text = outcome.value.get(key)
            if text:
                echo("".join("%d| %s\n" % (pid, line) for line in text.rstrip("\n").split("\n")), err=err, nl=False)
