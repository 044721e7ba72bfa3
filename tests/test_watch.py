"""lu watch, lu_payloads.watch() and @realtime against real target processes.

Every test edits a copy of a module in tmp_path (never the repository's files)
and checks, inside the target, what runs afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import REPO, TARGETS, assert_one_line_error, run_lu
from interpreters import EVERY

from lu_attach.session import connect


# ----------------------------------------------------------------------------- helpers
def ev(pid, *statements):
    """Run statements in the target; the last one is an expression whose value comes back (JSON)."""
    body = "\n".join(statements[:-1])
    source = "import json, sys, watch_shop\n%s\nprint(json.dumps(%s))\n" % (body, statements[-1])
    with connect(pid) as client:
        reply = client.request("exec", source=source)
    assert reply["error"] is None, reply["error"]
    return json.loads(reply["output"].strip().splitlines()[-1])


def line_of(text, fragment):
    for i, line in enumerate(text.splitlines(), 1):
        if fragment in line:
            return i
    raise AssertionError("%r not in the text" % fragment)


def write(path, text):
    """A plain (non-atomic) save: truncate, then write."""
    with open(path, "w") as handle:
        handle.write(text)


class WatchProcess:
    """`lu watch` running in the background; its output lines are collected."""

    def __init__(self, *args):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lu_cli.main", "watch"] + [str(a) for a in args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        self.out, self.err = [], []
        self.threads = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.err), daemon=True),
        ]
        for t in self.threads:
            t.start()

    @staticmethod
    def _read(stream, into):
        for line in stream:
            into.append(line.rstrip("\n"))

    def wait_for(self, fragment, stream="out", timeout=15.0, start=0):
        lines = self.out if stream == "out" else self.err
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in lines[start:]:
                if fragment in line:
                    return line
            if self.proc.poll() is not None and not any(t.is_alive() for t in self.threads):
                break
            time.sleep(0.01)
        raise AssertionError("no %r in lu watch's %s: out=%r err=%r" % (fragment, stream, self.out, self.err))

    def mark(self):
        return len(self.out), len(self.err)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def shop_dir(tmp_path):
    shutil.copy(os.path.join(TARGETS, "watch_shop.py"), str(tmp_path / "watch_shop.py"))
    shutil.copy(os.path.join(TARGETS, "watch_shop_check.py"), str(tmp_path / "watch_shop_check.py"))
    return tmp_path


def _function_codes_snapshot(pid):
    ev(
        pid,
        "import lu_payloads.engine.resolve as _r",
        "_o = []",
        "_r.module_functions(watch_shop, 'watch_shop', _o, set(), {})",
        "watch_shop._orig = {n: f.__code__ for n, f in _o}",
        "len(watch_shop._orig)",
    )


# ----------------------------------------------------------------------------- lu watch, end to end
@pytest.mark.parametrize("python", EVERY)
def test_watch_end_to_end(python, start_target, shop_dir):
    shop = str(shop_dir / "watch_shop.py")
    v0 = Path(shop).read_text()
    target = start_target(python, "watch_service.py", str(shop_dir))
    pid = target.pid
    assert run_lu("inject", pid).returncode == 0
    _function_codes_snapshot(pid)

    # bad paths are refused at start, in one line
    other = shop_dir / "not_loaded.py"
    other.write_text("x = 1\n")
    assert_one_line_error(
        run_lu("watch", pid, str(other), "--duration", "1"), "no module of process %d" % pid, "not_loaded.py"
    )
    assert_one_line_error(run_lu("watch", pid, str(shop_dir / "missing.py"), "--duration", "1"), "does not exist")

    ev(pid, "watch_shop._service.begin_serve()", "1")  # a coroutine now awaits inside serve()
    w = WatchProcess(pid, shop_dir, "--check", "watch_shop_check", "--duration", "60")
    try:
        w.wait_for("watching 1 file of process %d: watch_shop.py" % pid)

        # A: every line shifts by 3, five bodies change (one of them awaited right now)
        v1 = (
            ("# one\n# two\n# three\n" + v0)
            .replace("return sum(self.items)", "return sum(self.items) * 10")
            .replace("event-v1", "event-v2")
            .replace("tick-v1", "tick-v2")
            .replace("serve-v1:", "serve-v2:")
            .replace("after-v1", "after-v2")
        )
        write(shop, v1)
        w.wait_for("check watch_shop_check passed")
        updated = sorted(text for text in w.out if text.startswith(("updated", "added", "removed", "rebound")))
        assert updated == [
            "updated watch_shop.Cart.total",
            "updated watch_shop.after",
            "updated watch_shop.on_event",
            "updated watch_shop.serve",
            "updated watch_shop.tick",
        ], w.out
        assert w.err == []
        raise_line = line_of(v1, 'raise ValueError("boom")')
        got = ev(
            pid,
            "import traceback",
            "try:\n    watch_shop.boom()\nexcept ValueError as e:\n    tb = traceback.extract_tb(e.__traceback__)",
            "time = __import__('time'); time.sleep(0.05)",
            "[watch_shop._early['total'](), watch_shop.Cart([1]).total(), watch_shop._early['price'](1),"
            " watch_shop._early['callbacks'][0](), watch_shop._early['last_tick'], tb[-1].lineno,"
            " watch_shop.price.__code__.co_firstlineno, watch_shop.price is watch_shop._early['price'],"
            " watch_shop.price.__code__ is watch_shop._orig['watch_shop.price'],"
            " watch_shop._service.release(), watch_shop._service.serve_again()]",
        )
        assert got == [
            60,
            10,
            3,
            "event-v2",
            "tick-v2",
            raise_line,
            line_of(v1, "def price"),
            True,
            False,
            "serve-v1:after-v2",
            "serve-v2:after-v2",
        ]

        # the other tools now instrument the new bodies at the file's new lines
        hook_lines = [line_of(v1, "return sum(self.items) * 10"), line_of(v1, "return helper(n) + TAX")]
        got = ev(
            pid,
            "from lu_payloads import Instrument, UpdateManager",
            "hits = []",
            "uids = [UpdateManager.apply_update(Instrument(n, {('line_before', ln): "
            "(lambda info, ln: hits.append(ln), None)})) for n, ln in zip(['watch_shop.Cart.total', "
            "'watch_shop.price'], %r)]" % (hook_lines,),
            "r = [watch_shop._early['total'](), watch_shop.price(2)]",
            "[UpdateManager.revert(u) for u in uids]",
            "[r, hits]",
        )
        assert got == [[60, 5], hook_lines]

        # B: a new method (seen by an instance made before), a new function, a module-level change
        m = w.mark()
        v2 = (
            v1.replace(
                "    def hello(self):\n        return \"cart\"",
                "    def hello(self):\n        return \"cart\"\n\n    def count(self):\n        return len(self.items)",
            ).replace("TAX = 1", "TAX = 2")
            + "\n\ndef coupon(x):\n    return x - 1\n"
        )
        write(shop, v2)
        w.wait_for("added watch_shop.coupon", start=m[0])
        w.wait_for("ran watch_shop.py:%d: TAX = 2" % line_of(v2, "TAX = 2"), start=m[0])
        assert "added watch_shop.Cart.count" in w.out[m[0] :]
        assert ev(pid, "[watch_shop._early['cart'].count(), watch_shop.coupon(5), watch_shop.TAX]") == [3, 4, 2]

        # C: a syntax error applies nothing and is reported with its line; the fix then applies
        m = w.mark()
        broken = v2.replace("return helper(n) + TAX", "return helper(n) + TAX +")
        write(shop, broken)
        err = w.wait_for("SyntaxError", stream="err", start=m[1])
        assert "watch_shop.py:%d" % line_of(broken, "TAX +") in err and "nothing applied" in err
        assert ev(pid, "watch_shop.price(1)") == 4
        v3 = v2.replace("return helper(n) + TAX", "return helper(n) + TAX + 100")
        write(shop, v3)
        w.wait_for("updated watch_shop.price", start=m[0])
        assert ev(pid, "watch_shop._early['price'](1)") == 104

        # D: an editor that truncates, then writes: the empty file in between changes nothing
        m = w.mark()
        v4 = v3.replace('return "cart"', 'return "cart2"')
        write(shop, "")
        time.sleep(0.02)
        write(shop, v4)
        w.wait_for("updated watch_shop.Cart.hello", start=m[0])
        time.sleep(0.1)
        assert [text for text in w.out[m[0] :] if not text.startswith("check ")] == ["updated watch_shop.Cart.hello"]
        assert w.err[m[1] :] == []

        # E: removing a function that the file still uses is refused
        m = w.mark()
        write(shop, v4.replace("def helper(x):\n    return x * 2\n", ""))
        err = w.wait_for("helper", stream="err", start=m[1])
        assert "watch_shop.helper was removed from the file but watch_shop.price still uses it" in err, err
        assert "nothing applied" in err

        # F: a closure whose free variables change is refused, and the whole save with it
        m = w.mark()
        write(
            shop,
            v4.replace("n[0] += 1\n", "n[0] += step\n")
            .replace("    n = [0]\n", "    n = [0]\n    step = 1\n")
            .replace("return x - 1", "return x - 2"),
        )
        err = w.wait_for("free variables", stream="err", start=m[1])
        assert "watch_shop.make_counter.<locals>.inc" in err and "nothing applied" in err, err
        assert ev(pid, "[watch_shop.coupon(5), watch_shop.counter()]") == [4, 1]

        # G: a method that starts using super() is rebound (and says so)
        m = w.mark()
        v5 = v4.replace('return "cart2"', 'return "cart+" + super().hello()')
        write(shop, v5)
        line = w.wait_for("rebound watch_shop.Cart.hello", start=m[0])
        assert "references taken earlier keep the old body" in line
        assert ev(pid, "watch_shop._early['cart'].hello()") == "cart+base"

        # H: gatekeeping: a save that breaks the check is reverted at once
        m = w.mark()
        write(shop, v5.replace("return helper(n) + TAX + 100", "return -1"))
        err = w.wait_for("check watch_shop_check failed", stream="err", start=m[1])
        assert "reverted" in err
        w.wait_for("test_price_positive", stream="err", start=m[1])
        assert ev(pid, "watch_shop.price(1)") == 104

        listed = run_lu("ls", pid)
        assert listed.returncode == 0 and "watch" in listed.stdout and "watch_shop.coupon" in listed.stdout, (
            listed.stdout
        )

        # after lu revert --all the process runs its original code objects again
        assert run_lu("revert", pid, "--all").returncode == 0
        got = ev(
            pid,
            "import lu_payloads.engine.resolve as _r",
            "_o = []",
            "_r.module_functions(watch_shop, 'watch_shop', _o, set(), {})",
            "[sorted(n for n, f in _o if f.__code__ is not watch_shop._orig.get(n)),"
            " hasattr(watch_shop.Cart, 'count'), hasattr(watch_shop, 'coupon'), watch_shop._early['total'](),"
            " watch_shop._early['price'](1), watch_shop._early['cart'].hello()]",
        )
        assert got == [[], False, False, 6, 3, "cart"]

        # the target exiting ends the watch with a clear message
        target.kill()
        w.proc.wait(10)
        w.wait_for("process %d exited; stopped watching" % pid, stream="err")
        assert w.proc.returncode == 1
        assert not any("Traceback" in text for text in w.err)
    finally:
        w.stop()


# ----------------------------------------------------------------------------- in-process watching
INPROCESS = r'''
import logging, os, sys, time
sys.path.insert(0, sys.argv[1])
logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(name)s %(levelname)s %(message)s")
import lu_payloads
import rt_shop
seen = []
lu_payloads.on_class_update(lambda cls, names: print("class-update", cls.__name__, ",".join(names), flush=True))
early = rt_shop.Shop()
watcher = lu_payloads.watch([sys.argv[1]], interval=0.01, prune=True)
print("ready", flush=True)
for line in sys.stdin:
    cmd = line.strip()
    if cmd == "state":
        print("state", early.name(), hasattr(rt_shop, "old"), getattr(early, "extra", lambda: None)(), flush=True)
    elif cmd == "stop":
        print("stopped", lu_payloads.stop_watching(), watcher.thread.is_alive(), flush=True)
        break
'''

RT_SHOP = '''\
def old():
    return "old"


class Shop:
    def name(self):
        return "v1"
'''


class Program:
    """A target program driven through stdin; its output lines are collected by a thread."""

    def __init__(self, python, script, *args):
        self.proc = subprocess.Popen(
            [python, "-u", str(script)] + [str(a) for a in args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd="/tmp",
        )
        self.lines = []
        self.taken = 0
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def send(self, text):
        self.proc.stdin.write(text)
        self.proc.stdin.flush()

    def expect(self, prefix, timeout=10.0):
        """The next line (after the last one expected) that starts with prefix."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i in range(self.taken, len(self.lines)):
                if self.lines[i].startswith(prefix):
                    self.taken = i + 1
                    return self.lines[i]
            if not self.reader.is_alive():
                break
            time.sleep(0.005)
        raise AssertionError("no line starting with %r; got %r" % (prefix, self.lines))

    def since(self, mark):
        return self.lines[mark:]

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


@pytest.mark.parametrize("python", EVERY)
def test_inprocess_watch(python, tmp_path):
    (tmp_path / "lu_payloads").symlink_to(os.path.join(REPO, "payloads"))
    (tmp_path / "rt_shop.py").write_text(RT_SHOP)
    script = tmp_path / "prog.py"
    script.write_text(INPROCESS)
    # the target reads commands on stdin, so it is started here rather than by start_target
    p = Program(python, script, tmp_path)
    try:
        p.expect("ready")
        src = (
            RT_SHOP.replace('"v1"', '"v2"').replace("def old():\n    return \"old\"\n\n\n", "")
            + "\n    def extra(self):\n        return 'extra'\n"
        )
        write(str(tmp_path / "rt_shop.py"), src)
        p.expect("lu_payloads.watch INFO added rt_shop.Shop.extra")
        got = [text for text in p.lines if text.startswith(("lu_payloads.watch INFO", "class-update"))]
        assert sorted(got) == [
            "class-update Shop name,extra",
            "lu_payloads.watch INFO added rt_shop.Shop.extra",
            "lu_payloads.watch INFO pruned rt_shop.old",
            "lu_payloads.watch INFO updated rt_shop.Shop.name",
            "lu_payloads.watch INFO watching 2 files",
        ], p.lines
        p.send("state\n")
        assert p.expect("state") == "state v2 False extra"
        # a syntax error is logged with its line; nothing changes
        write(str(tmp_path / "rt_shop.py"), src.replace("return \"v2\"", "return \"v3\" +"))
        err = p.expect("lu_payloads.watch ERROR")
        assert "rt_shop.py:%d: SyntaxError" % line_of(src, '"v2"') in err, err
        p.send("state\nstop\n")
        assert p.expect("state") == "state v2 False extra"
        assert p.expect("stopped") == "stopped 1 False"
        assert p.proc.wait(10) == 0  # the program exits: the watcher's thread is gone
    finally:
        p.close()


# ----------------------------------------------------------------------------- @realtime
REALTIME_MOD = '''\
import types
from lu_payloads import realtime


def coroutine(func):
    """A tornado-style generator coroutine driver (@gen.coroutine's shape)."""
    import functools

    @functools.wraps(func)
    def wrapper(*args):
        gen = func(*args)
        value = None
        try:
            while True:
                value = gen.send(value)
        except StopIteration as stop:
            return stop.value
    return wrapper


@realtime(interval=0.01)
def plain(x):
    return "plain-v1:%d" % x


class K:
    @realtime(interval=0.01)
    def meth(self):
        return "meth-v1"


@realtime(interval=0.01)
async def aio():
    return "aio-v1"


@coroutine
@realtime(interval=0.01)
def tornado_style():
    got = yield 1
    return "tornado-v1"
'''

REALTIME_PROG = r'''
import asyncio, logging, sys
sys.path.insert(0, sys.argv[1])
logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(name)s %(levelname)s %(message)s")
import rt_funcs
k = rt_funcs.K()
print("ready", flush=True)
for line in sys.stdin:
    if line.strip() == "call":
        loop = asyncio.new_event_loop()
        try:
            aio = loop.run_until_complete(rt_funcs.aio())
        finally:
            loop.close()
        print("result", rt_funcs.plain(1), k.meth(), aio, rt_funcs.tornado_style(), flush=True)
'''


@pytest.mark.parametrize("python", EVERY)
def test_realtime_decorator(python, tmp_path):
    (tmp_path / "lu_payloads").symlink_to(os.path.join(REPO, "payloads"))
    mod = tmp_path / "rt_funcs.py"
    mod.write_text(REALTIME_MOD)
    script = tmp_path / "prog.py"
    script.write_text(REALTIME_PROG)
    p = Program(python, script, tmp_path)

    def call():
        time.sleep(0.03)  # longer than the decorator's interval
        p.send("call\n")
        return p.expect("result")

    try:
        p.expect("ready")
        assert call() == "result plain-v1:1 meth-v1 aio-v1 tornado-v1"
        v2 = "# shifted\n" + REALTIME_MOD.replace("-v1", "-v2")
        write(str(mod), v2)
        assert call() == "result plain-v2:1 meth-v2 aio-v2 tornado-v2"
        # a syntax error: logged, the last good bodies keep running
        mark = len(p.lines)
        write(str(mod), v2.replace('return "meth-v2"', 'return ("meth-v3"'))
        out = call()
        assert out == "result plain-v2:1 meth-v2 aio-v2 tornado-v2", out
        errors = [text for text in p.since(mark) if "lu_payloads.realtime ERROR" in text]
        assert len(errors) == 4 and all("SyntaxError" in text and "rt_funcs.py:" in text for text in errors), p.lines
        write(str(mod), v2.replace("-v2", "-v4"))
        assert call() == "result plain-v4:1 meth-v4 aio-v4 tornado-v4"
        assert not any("Traceback" in text for text in p.lines), p.lines
    finally:
        p.close()
