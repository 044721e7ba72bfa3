"""The interactive controller of `lu attach`: a Python prompt whose statements run in the target."""

from __future__ import annotations

import codeop
import os
import re
import secrets
import sys
import threading
import time
from types import ModuleType
from typing import Any, Callable, Dict, List, Optional, TypeVar

import click

from lu_attach import completion, runtime
from lu_attach.client import WAIT_FOREVER, AgentClient
from lu_attach.errors import AgentGone, LuAttachError, Stopped
from lu_attach.group import Tree
from lu_attach.signals import CtrlCPresses

from . import tree_output
from .output import echo

try:
    import readline
except ImportError:  # a Python built without it: no line editing, everything else works
    readline = None  # type: ignore[assignment]

_PATCH_CALL = re.compile(r"""^\s*patch\(\s*(['"])(.+?)\1\s*\)\s*$""")
HISTORY = os.path.join(os.path.expanduser("~"), ".lu_history")
# Quotes are not word delimiters: GNU readline closes the string after a unique match
# when the word it completed started at a quote (`'shoplib.price'`), which ends the pattern.
COMPLETER_DELIMS = " \t\n`~!@#$%^&*()-=+[{]}\\|;:,<>/?"
COMPLETE_TIMEOUT = 5.0  # Tab never freezes the prompt for longer than this
GRACE = 1.0  # seconds an interrupted statement has to stop before the user is told it still runs
SETTLE = 0.3  # the same when the user pressed Ctrl-C again: a statement that stops at once is not reported
RETRY = 0.5  # how often an interrupt refused while the statement is in lu's own code is asked again
POLL = 0.05  # how often the wait for a statement looks at Ctrl-C presses
INTERRUPT_TIMEOUT = 3.0  # for reaching the agent on a second connection to interrupt
T = TypeVar("T")


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
            state["matches"] = _complete_words(client, line, text)
        matches = state["matches"]
        return matches[index] if index < len(matches) else None

    readline.set_completer_delims(COMPLETER_DELIMS)
    readline.set_completer(completer)
    readline.parse_and_bind("tab: complete")
    return readline


def _complete_words(client: AgentClient, line: str, word: str) -> List[str]:
    """readline's replacements for its word; a Ctrl-C meanwhile is let go, so no reply is cut in half."""
    with CtrlCPresses():
        try:
            found = completion.complete(client, line, timeout=COMPLETE_TIMEOUT)
        except (LuAttachError, OSError):
            return []
    return completion.editor_words(line, word, found)


def run_controller(client: AgentClient, pid: int, tree: Optional[Tree] = None) -> None:
    """The prompt; with `tree`, every statement runs in every process of it (client is its top's).

    Ctrl-C while a statement runs interrupts the statement in the target, not
    the controller (see _Interrupting); at the prompt it clears the line.
    Ctrl-D leaves.
    """
    info = client.request("info")
    readline = _setup_readline(client) if sys.stdin.isatty() else None
    # (made before the banner: what follows the banner, up to the prompt, is only the loop's own set-up)
    run = _single(client, pid, _can_interrupt(info)) if tree is None else _in_tree(tree)
    compiler = codeop.CommandCompiler()  # one for the session: it remembers the __future__ imports typed
    if tree is None:
        echo(
            "lu controller: process %d, Python %s, agent %s. Statements run inside the target; "
            "help for the vocabulary, Ctrl-C interrupts one, Ctrl-D to leave."
            % (pid, info["python"], info["agent_version"])
        )
    else:
        echo(
            "lu controller: the tree of %d (%d processes: %s), Python %s. Statements run in every one of them, "
            "each line of output prefixed with its pid; Ctrl-C interrupts one, Ctrl-D to leave."
            % (pid, len(tree.pids), ", ".join(map(str, tree.pids)), info["python"])
        )
    try:
        while True:
            source = _read_statement(compiler)
            if source is None:
                return
            if source.strip():
                _run_guarded(run, source)
    except _Left as left:
        _say(str(left))
        raise click.exceptions.Exit(130)
    finally:
        if readline is not None:
            try:
                readline.write_history_file(HISTORY)
            except OSError:
                pass


def _run_guarded(run: Callable[[str], None], source: str) -> None:
    """Run a statement; a Ctrl-C just before it is sent or as its reply is shown only cuts what is shown.

    While the statement runs, Ctrl-C is _Interrupting's; around that wait
    Python's own KeyboardInterrupt can still land, when no request is in
    flight, so the connection is whole and the prompt comes back.
    """
    try:
        run(source)
    except Stopped:
        raise  # SIGTERM or SIGHUP: lu stops
    except KeyboardInterrupt:
        echo("\nKeyboardInterrupt")


def _read_statement(compiler: codeop.CommandCompiler) -> Optional[str]:
    """The next complete statement typed (None at Ctrl-D); Ctrl-C drops what was typed, like Python's prompt."""
    lines: List[str] = []
    prompt = ">>> "
    while True:
        try:
            line = input(prompt) if sys.stdin.isatty() else _read_plain(prompt)
        except EOFError:
            if lines:
                return "\n".join(lines)
            echo("")
            return None
        except Stopped:
            raise  # SIGTERM or SIGHUP: lu stops
        except KeyboardInterrupt:
            echo("\nKeyboardInterrupt")
            lines = []
            prompt = ">>> "
            continue
        lines.append(line)
        try:
            complete = compiler("\n".join(lines), "<lu>", "single")
        except (SyntaxError, OverflowError, ValueError):
            return "\n".join(lines)  # let the target report it, with its own Python's message
        if complete is not None:
            return "\n".join(lines)
        prompt = "... "


def _can_interrupt(info: Dict[str, Any]) -> bool:
    """Whether the agent can interrupt a statement (an agent started by an older lu cannot)."""
    return "interrupt" in (info.get("requests") or ())


def _single(client: AgentClient, pid: int, interruptible: bool) -> Callable[[str], None]:
    return lambda source: _execute(client, source, pid, interruptible)


def _in_tree(tree: Tree) -> Callable[[str], None]:
    infos = tree.each("info")
    able = [pid for pid, outcome in infos.items() if outcome.ok and _can_interrupt(outcome.value)]
    return lambda source: _execute_in_tree(tree, source, able)


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


def _execute(client: AgentClient, source: str, pid: int, interruptible: bool = True) -> None:
    where = "process %d" % pid
    patch = _PATCH_CALL.match(source)
    try:
        if patch:
            path = os.path.expanduser(patch.group(2))
            text = _read_patch(path)
            if text is None:
                return
            ids = _wait_for(
                lambda: client.request("patch", timeout=WAIT_FOREVER, source=text, filename=os.path.basename(path)),
                _Interrupting(lambda: ATOMIC, where),
                client.hang_up,
            )
            echo("applied update%s %s" % ("s" if len(ids) != 1 else "", ", ".join(map(str, ids))))
            return
        token = secrets.token_hex(16)
        args = {"source": source, "token": token} if interruptible else {"source": source}
        stop = (lambda: _interrupt(pid, token)) if interruptible else (lambda: OLD_AGENT)
        result = _wait_for(
            lambda: client.request("exec", timeout=WAIT_FOREVER, **args), _Interrupting(stop, where), client.hang_up
        )
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


def _interrupt(pid: int, token: str) -> str:
    """Ask pid's agent, on a connection of its own (the statement's waits for it), to interrupt the statement."""
    target = runtime.TargetProcess.of(pid)
    sock = runtime.connect_socket(target, timeout=INTERRUPT_TIMEOUT)
    with AgentClient(sock, timeout=INTERRUPT_TIMEOUT, expect=target) as side:
        return str(side.request("interrupt", token=token))


def _execute_in_tree(tree: Tree, source: str, interruptible: List[int]) -> None:
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
        except Stopped:
            raise
        except KeyboardInterrupt:  # lu leaves: closing its connections undoes what a member had not committed
            raise _Left(
                "interrupted while patching the tree of %d; each process undoes what it had not committed as lu "
                "leaves (lu ls %d --tree shows what stays)" % (tree.root, tree.root)
            )
        for line in tree_output.patched(tree.root, result):
            echo(line)
        return
    token = secrets.token_hex(16)

    def args_of(pid: int) -> Dict[str, Any]:
        # request() takes its own timeout among these: a statement runs as long as the user lets it
        args: Dict[str, Any] = {"source": source, "timeout": WAIT_FOREVER}
        return dict(args, token=token) if pid in interruptible else args

    def hang_up() -> None:
        for client in tree.clients.values():
            client.hang_up()

    outcomes = _wait_for(
        lambda: tree.each_with("exec", args_of),
        _Interrupting(lambda: _interrupt_tree(tree, token, interruptible), "the tree of %d" % tree.root),
        hang_up,
    )
    for pid in sorted(outcomes):
        outcome = outcomes[pid]
        if not outcome.ok:
            echo("%d| %s" % (pid, "exited" if outcome.gone else outcome.error), err=True)
            continue
        for key, err in (("output", False), ("error", True)):
            text = outcome.value.get(key)
            if text:
                echo("".join("%d| %s\n" % (pid, line) for line in text.rstrip("\n").split("\n")), err=err, nl=False)


def _interrupt_tree(tree: Tree, token: str, interruptible: List[int]) -> str:
    """Interrupt the statement in every member that runs it; the answer that says most about those still running."""
    answers = [OLD_AGENT for pid in tree.pids if pid not in interruptible]
    for pid in interruptible:
        try:
            answers.append(_interrupt(pid, token))
        except LuAttachError:
            answers.append(FINISHED if runtime.process_gone(pid) else UNREACHABLE)
    return max(answers, key=lambda answer: _TELLING.index(answer) if answer in _TELLING else len(_TELLING))


# -- Ctrl-C while a statement runs -------------------------------------------------------

# What an agent answers to an interrupt (lu_payloads.console.interrupt), and the controller's own cases.
SENT, PENDING, FINISHED, BUSY, UNSUPPORTED = "sent", "pending", "finished", "busy", "unsupported"
ATOMIC, OLD_AGENT, UNREACHABLE = "atomic", "old agent", "unreachable"
_TELLING = [FINISHED, PENDING, SENT, BUSY, UNSUPPORTED, OLD_AGENT, UNREACHABLE, ATOMIC]  # least to most
_STOPPING = (SENT, PENDING, FINISHED)  # answers after which the statement is expected to stop by itself


class _Left(Exception):
    """The user left the controller while a statement still ran in the target; str() says so."""


class _Interrupting:
    """What Ctrl-C does while a statement runs: interrupt it, then say why it still runs, then leave.

    The first press asks the target to interrupt the statement; it then
    comes back with its KeyboardInterrupt like any error. If it still runs
    GRACE seconds later (blocked in a call Python cannot interrupt, such as
    a sleep), or SETTLE seconds after the first press when the user pressed
    again, they are told why and what a further press does: leave the
    controller, saying that the statement still runs. Nothing is left
    running in the target without the user being told.
    """

    def __init__(self, stop: Callable[[], str], where: str, say: Optional[Callable[[str], None]] = None) -> None:
        self.stop = stop  # asks the target to interrupt; returns its answer (raises LuAttachError: unreachable)
        self.where = where  # "process 12", "the tree of 12"
        self.say = say or _say
        self.answer: Optional[str] = None
        self.reason = ""
        self.first_asked: Optional[float] = None
        self.last_asked = 0.0
        self.hurried = False  # pressed again before being told
        self.told = False

    def tick(self, presses: int, now: float) -> None:
        """Account for `presses` new Ctrl-C presses at time `now`; raises _Left when the user leaves."""
        for _ in range(presses):
            if self.told:
                raise _Left(self.leaving())
            if self.first_asked is None:
                self.first_asked = now
                self._ask(now)
            else:
                self.hurried = True
        if self.first_asked is None:
            return
        if self.answer == BUSY and now - self.last_asked >= RETRY:
            self._ask(now)
        waited = now - self.first_asked
        if not self.told and (self.answer not in _STOPPING or waited >= GRACE or (self.hurried and waited >= SETTLE)):
            self._tell()

    def _ask(self, now: float) -> None:
        self.last_asked = now
        try:
            self.answer = self.stop()
        except LuAttachError as exc:
            self.answer, self.reason = UNREACHABLE, str(exc)

    def _tell(self) -> None:
        self.told = True
        self.say(self.still_running())

    def still_running(self) -> str:
        """Why the statement still runs, and what another Ctrl-C does."""
        where = self.where
        again = "; Ctrl-C again to leave the controller"
        if self.answer == ATOMIC:
            return "the patch is being applied in %s and is never cut short%s" % (where, again)
        if self.answer == BUSY:
            return (
                "the statement still runs in %s, inside an operation of lu's that is never cut short; "
                "it is interrupted as soon as that ends%s" % (where, again)
            )
        if self.answer == UNSUPPORTED:
            return "%s cannot interrupt the statement (its Python cannot raise in a thread); it runs to its end%s" % (
                where,
                again,
            )
        if self.answer == OLD_AGENT:
            return (
                "the agent in %s was started by an older lu that cannot interrupt a statement (lu detach, then "
                "attach again, starts a new one); the statement runs to its end%s" % (where, again)
            )
        if self.answer == UNREACHABLE:
            return "could not ask %s to interrupt the statement (%s); it runs to its end%s" % (
                where,
                self.reason or "no answer",
                again,
            )
        return (
            "the statement still runs in %s: it is in a call Python cannot interrupt (a sleep, a blocking read, "
            "C code) and stops with KeyboardInterrupt when that call returns%s" % (where, again)
        )

    def leaving(self) -> str:
        """The line said on leaving: what still runs in the target."""
        if self.answer == ATOMIC:
            return "left the controller; the patch is still being applied in %s (lu ls shows it)" % self.where
        ending = (
            "stops with KeyboardInterrupt when its blocking call returns"
            if self.answer in _STOPPING
            else "runs to its end"
        )
        return "left the controller while its statement still runs in %s; it %s, and what it prints is lost" % (
            self.where,
            ending,
        )


def _say(line: str) -> None:
    echo(("\n" if sys.stdin.isatty() else "") + "lu: " + line, err=True)


def _wait_for(work: Callable[[], T], interrupting: _Interrupting, hang_up: Callable[[], None]) -> T:
    """work()'s result (it talks to the target on a thread of its own); Ctrl-C meanwhile goes to `interrupting`.

    Leaving (or lu being stopped) while work still waits hangs its
    connection up, so its thread ends and lu can exit.
    """
    done = threading.Event()
    outcome: Dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except BaseException as exc:  # handed to the waiting thread, which raises it
            outcome["error"] = exc
        finally:
            done.set()

    with CtrlCPresses() as presses:  # before the request goes: from then on a press only counts
        threading.Thread(target=run, name="lu-statement", daemon=True).start()
        try:
            seen = 0
            while not done.wait(POLL):
                count = presses.count
                interrupting.tick(count - seen, time.monotonic())
                seen = count
        except BaseException:
            hang_up()
            raise
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
