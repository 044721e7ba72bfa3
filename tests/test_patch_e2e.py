"""End to end: `lu patch / ls / revert / detach` and the controller against a real threaded HTTP service.

The target (tests/targets/shop_service.py + the package shoplib, copied to a
temporary folder so a test may edit it on disk) answers GET /all with the result
of every kind of function shoplib has: plain, imported-by-name, classmethod,
staticmethod, property getter/setter, zero-argument super(), a functools.wraps
decorated function, a generator, a coroutine, a closure kept at module level,
defaults and keyword-only arguments. Load threads keep requesting it while
patches are applied and reverted: no request may fail.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
from conftest import REPO, TARGETS, assert_one_line_error, run_lu
from interpreters import EVERY

ORIGINAL = {
    "price": 30,
    "imported": 30,
    "checkout": 30,
    "keep": 30,
    "total": 29,
    "of": 20,
    "fmt": "2.00",
    "discount": 1,
    "describe": "cart<base>",
    "rebate": 100,
    "items": [0, 10, 20],
    "async": 20,
    "rounder": 1.23,
    "quote": "q:24.0",
    "made": 4,
}

# What /all answers while BIG_PATCH is in force.
PATCHED = {
    "price": 300,
    "imported": 300,
    "checkout": 300,
    "keep": 300,
    "total": -1,
    "of": -1,
    "fmt": "<2>",
    "discount": 20,
    "describe": "CART(base)",
    "rebate": 99,
    "items": [0, -1, -2],
    "async": 9,
    "rounder": 1001.23,
    "quote": "Q:1030.0",
    "made": 4,
}

# One Redefine of every kind of function, a helper (bonus) and a constant the new bodies use.
BIG_PATCH = '''\
import asyncio
from lu_payloads import Instrument, Redefine, UpdateManager

BONUS = 7

def bonus(x):
    return x + BONUS

def price(n, unit=100):
    """Price of n items, fixed."""
    return n * unit  # P:price-return

def rebate(total):
    return total - 1

def rounder(x):
    return round(x, digits) + 1000

def quote(n, unit=10, *, tax=0.5, label="Q"):
    return "%s:%s" % (label, rounder(price(n, unit) * (1 + tax)))

def items(n):
    for i in range(n):
        yield -i

async def fetch_price(n):
    await asyncio.sleep(0)
    return n * 4 + 1

def shipping(n):
    # Uses a helper of the patch (copied into the module; see test_revert_keeps_helpers_of_running_frames).
    return bonus(n)

class Cart:
    def total(self):
        return -1

    @classmethod
    def of(cls, *ns):
        return cls().add(99)

    @staticmethod
    def fmt(amount):
        return "<%s>" % amount

    def discount_get(self):
        return self._discount * 10

    def discount_set(self, value):
        self._discount = value + 1

    def describe(self):
        return "CART(" + super().describe() + ")"

UpdateManager.apply_update(Redefine('shoplib', None, {
    'price': price, 'shoplib.rebate': rebate, 'rounder': rounder, 'quote': quote, 'items': items,
    'fetch_price': fetch_price, 'shipping': shipping, 'Cart.total': Cart.total, 'Cart.of': Cart.of, 'Cart.fmt': Cart.fmt,
    'Cart.discount.fget': Cart.discount_get, 'Cart.discount.fset': Cart.discount_set,
    'Cart.describe': Cart.describe}))
'''

# Every function BIG_PATCH changes, as an expression of the target (the function the user wrote).
FUNCS = {
    "price": "shoplib.price",
    "rebate": "shoplib.rebate.__wrapped__",
    "rounder": "shoplib.rounder",
    "quote": "shoplib.quote",
    "shipping": "shoplib.shipping",
    "items": "shoplib.items",
    "fetch_price": "shoplib.fetch_price",
    "total": "shoplib.Cart.total",
    "of": "shoplib.Cart.__dict__['of'].__func__",
    "fmt": "shoplib.Cart.__dict__['fmt'].__func__",
    "fget": "shoplib.Cart.discount.fget",
    "fset": "shoplib.Cart.discount.fset",
    "describe": "shoplib.Cart.describe",
}
STASH = "shoplib._funcs = {%s}; shoplib._orig = {k: f.__code__ for k, f in shoplib._funcs.items()}" % ", ".join(
    "%r: %s" % item for item in FUNCS.items()
)
# Names whose running code object is not the original one (empty when all is reverted).
CHANGED = "sorted(k for k, f in shoplib._funcs.items() if f.__code__ is not shoplib._orig[k])"

SHOPLIB = os.path.join(TARGETS, "shoplib", "__init__.py")
EXAMPLES = os.path.join(REPO, "examples")


def line_of(tag, text=None):
    """The line number tagged `# L:tag` in shoplib (or `# P:tag` in a patch's text)."""
    if text is None:
        with open(SHOPLIB) as handle:
            text = handle.read()
    for number, line in enumerate(text.splitlines(), 1):
        if line.rstrip().endswith(":" + tag):
            return number
    raise AssertionError("no line tagged %s" % tag)


# ----------------------------------------------------------------------------- helpers
def start_shop(start_target, python, tmp_path):
    app = tmp_path / "app"
    app.mkdir()
    shutil.copy(os.path.join(TARGETS, "shop_service.py"), str(app))
    shutil.copytree(
        os.path.join(TARGETS, "shoplib"), str(app / "shoplib"), ignore=shutil.ignore_patterns("__pycache__")
    )
    target = start_target(python, str(app / "shop_service.py"))
    port = int(target.ready_line.split()[1])
    ok(run_lu("inject", target.pid))
    return target, port, app


def get_all(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/all" % port, timeout=10) as response:
        return json.loads(response.read().decode())


class Load:
    """Threads that request /all without pause; every failure is kept."""

    def __init__(self, port, threads=1):
        self.port = port
        self.done = 0
        self.failures = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        for thread in self._threads:
            thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/all" % self.port, timeout=10) as response:
                    body = response.read().decode()
                    if response.status != 200:
                        self.failures.append(body)
                    else:
                        json.loads(body)
                        self.done += 1
            except Exception as exc:  # urllib raises HTTPError for the 500 with the traceback
                self.failures.append("%s: %s" % (exc, getattr(exc, "read", lambda: b"")().decode()))
            time.sleep(0.01)

    def stop(self):
        self._stop.set()
        for thread in self._threads:
            thread.join(15)
        assert not self.failures, self.failures[:3]
        assert self.done > 20, self.done


def ok(result):
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def lu_patch(pid, path):
    """`lu patch`; returns the ids it printed."""
    out = ok(run_lu("patch", pid, path))
    assert out.startswith("applied update"), out
    return [int(x) for x in re.findall(r"^applied update (\d+): ", out, re.M)]


def lu_ls(pid):
    updates = json.loads(ok(run_lu("ls", pid, "--json")))
    for update in updates:
        assert {"id", "kind", "targets", "description", "applied_at", "hook_errors"} <= set(update), update
    return updates


def controller(pid, *statements):
    """Run statements in `lu attach PID`; returns (values printed by `?expr` lines, full stdout).

    A statement starting with '?' is an expression whose value comes back as JSON.
    """
    lines = ["import shoplib, json"]
    for statement in statements:
        if statement.startswith("?"):
            lines.append("print('@@' + json.dumps(%s))" % statement[1:])
        else:
            lines.append(statement)
    result = run_lu("attach", pid, input="\n".join(lines) + "\n")
    out = ok(result)
    assert all(line.startswith("lu: started its agent in process") for line in result.stderr.splitlines()), (
        result.stderr
    )
    values = [json.loads(line[2:]) for line in out.splitlines() if line.startswith("@@")]
    assert len(values) == sum(s.startswith("?") for s in statements), out
    return values, out


# ----------------------------------------------------------------------------- the patches used below
RECORD_PATCH = '''\
import shoplib
import threading
from lu_payloads import Instrument, UpdateManager

seen = shoplib._seen = []

def before(info, args):
    seen.append((threading.get_ident(), "before", info.name, args["n"]))

def after(info, result, exc):
    seen.append((threading.get_ident(), "after", info.name, result))

def line(info, lineno, local_vars):
    seen.append((threading.get_ident(), "line", lineno, local_vars["n"]))

UpdateManager.apply_update(Instrument("shoplib.price", {
    "func_before": before, "func_after": after, ("line_before", (%d,)): line}, description="record price"))
'''

PREDEFINE_PATCH = '''\
from lu_payloads import Redefine, UpdateManager

def setup():
    import math
    TAX = 0.5

def price(n, unit=10):
    return math.ceil(n * unit * (1 + TAX))

UpdateManager.apply_update(Redefine('shoplib', setup, {'price': price}))
'''

TWO_PATCH = '''\
from lu_payloads import Instrument, Redefine, UpdateManager
import shoplib

def describe(self):
    return "two"

UpdateManager.apply_update(Redefine('shoplib', None, {'Cart.describe': describe}))
shoplib._described = []
UpdateManager.apply_update(Instrument('shoplib.Cart.describe', {'func_after': lambda info, r, e: shoplib._described.append(r)}))
'''


# What the hooks of RECORD_PATCH record when this thread calls price(4) (the load threads call it too).
CALL_PRICE_4 = (
    "(shoplib._seen.clear(), shoplib.price(4), [e[1:] for e in shoplib._seen if e[0] == threading.get_ident()])[2]"
)


# ----------------------------------------------------------------------------- tests
@pytest.mark.parametrize("python", EVERY)
def test_patch_and_revert_under_load(python, start_target, tmp_path):
    target, port, _app = start_shop(start_target, python, tmp_path)
    values, _ = controller(target.pid, STASH, "?%s" % CHANGED, "?shoplib.price.__doc__")
    assert values == [[], "Price of n items."]
    assert get_all(port) == ORIGINAL
    load = Load(port)

    # 1. A Redefine of every kind of function, with a helper and a constant, as one update.
    big = write(tmp_path, "big.py", BIG_PATCH)
    [redefine_id] = lu_patch(target.pid, big)
    assert get_all(port) == PATCHED
    [update] = lu_ls(target.pid)
    assert update["id"] == redefine_id and update["kind"] == "redefine" and update["hook_errors"] == 0
    assert set(update["targets"]) == {
        "shoplib." + n
        for n in (
            "price",
            "rebate",
            "rounder",
            "quote",
            "items",
            "fetch_price",
            "shipping",
            "Cart.total",
            "Cart.of",
            "Cart.fmt",
            "Cart.discount.fget",
            "Cart.discount.fset",
            "Cart.describe",
        )
    }
    assert update["applied_at"] and update["description"]
    values, _ = controller(
        target.pid,
        "?%s" % CHANGED,
        "?shoplib.price.__doc__",
        "?shoplib.price.__defaults__",
        "?shoplib.quote.__kwdefaults__",
        "from shoplib import checkout",
        "?[checkout.price is shoplib.price, checkout.keep is shoplib.price, shoplib._funcs['price'] is shoplib.price]",
        "?[shoplib.shipping(1), hasattr(shoplib, 'BONUS')]",
        "n = shoplib.rebate.calls",
        "?[shoplib.rebate(5), shoplib.rebate.calls > n]",
    )
    assert values == [
        sorted(FUNCS),
        "Price of n items, fixed.",
        [100],
        {"tax": 0.5, "label": "Q"},
        [True, True, True],
        [8, False],
        [4, True],
    ]  # the wraps-decorator's wrapper still runs

    # 2. Instrument over Redefine: function points and a line of the redefined body (a line of big.py).
    record = write(tmp_path, "record.py", RECORD_PATCH % line_of("price-return", BIG_PATCH))
    [instrument_id] = lu_patch(target.pid, record)
    assert instrument_id == redefine_id + 1
    assert get_all(port) == PATCHED
    values, _ = controller(target.pid, "?%s" % CALL_PRICE_4, "?[u['kind'] for u in LU.ls()]")
    assert values == [
        [
            ["before", "shoplib.price", 4],
            ["line", line_of("price-return", BIG_PATCH), 4],
            ["after", "shoplib.price", 400],
        ],
        ["redefine", "instrument"],
    ]

    # Revert the Redefine below the Instrument: original body, function points still recorded, the
    # line point (a line of the redefined body) dormant.
    ok(run_lu("revert", target.pid, redefine_id))
    assert get_all(port) == ORIGINAL
    assert [u["id"] for u in lu_ls(target.pid)] == [instrument_id]
    values, _ = controller(
        target.pid, "?%s" % CALL_PRICE_4, "?%s" % CHANGED, "?shoplib.price.__doc__", "?shoplib.price.__defaults__"
    )
    assert values == [
        [["before", "shoplib.price", 4], ["after", "shoplib.price", 40]],
        ["price"],
        "Price of n items.",
        [10],
    ]
    ok(run_lu("revert", target.pid, instrument_id))
    values, _ = controller(target.pid, "?%s" % CHANGED, "?%s" % CALL_PRICE_4, "?LU.ls()")
    assert values == [[], [], []]

    # The other order: Instrument reverted first, the Redefine stays in force.
    [redefine_id] = lu_patch(target.pid, big)
    [instrument_id] = lu_patch(target.pid, record)
    values, _ = controller(target.pid, "?%s" % CALL_PRICE_4)
    assert values == [
        [
            ["before", "shoplib.price", 4],
            ["line", line_of("price-return", BIG_PATCH), 4],
            ["after", "shoplib.price", 400],
        ]
    ]
    ok(run_lu("revert", target.pid, instrument_id))
    assert get_all(port) == PATCHED
    ok(run_lu("revert", target.pid, redefine_id))
    assert get_all(port) == ORIGINAL

    # 3. predefine: its imports and constants exist while the update is in force and are undone on revert.
    [pre_id] = lu_patch(target.pid, write(tmp_path, "pre.py", PREDEFINE_PATCH))
    assert get_all(port)["price"] == 45

    # 4. In the controller: patch('f.py') makes two updates in one transaction, LU.ls(), LU.revert(n).
    two = write(tmp_path, "two.py", TWO_PATCH)
    values, out = controller(
        target.pid,
        "?%s" % CALL_PRICE_4,
        "?%s" % CHANGED,
        "?[shoplib.TAX, hasattr(shoplib, 'math')]",
        "patch(%r)" % two,
        "?[u['id'] for u in LU.ls()]",
        "?shoplib.Cart().describe()",
        "?shoplib._described[-1]",
        "LU.ls()",
    )
    ids = [int(x) for x in re.search(r"applied updates ([\d, ]+)", out).group(1).split(", ")]
    assert ids == [pre_id + 1, pre_id + 2]
    assert values == [[], ["price"], [0.5, True], [pre_id] + ids, "two", "two"]  # record.py's hooks are gone
    assert "instrument" in out and "shoplib.Cart.describe" in out  # the LU.ls() table
    values, _ = controller(
        target.pid,
        "LU.revert(%d)" % ids[0],
        "?shoplib.Cart().describe()",
        "?shoplib._described[-1]",
        "?[u['id'] for u in LU.ls()]",
    )
    assert values == ["cart<base>", "cart<base>", [pre_id, ids[1]]]

    # 5. revert --all: everything, in one command.
    out = ok(run_lu("revert", target.pid, "--all"))
    assert str(pre_id) in out and str(ids[1]) in out
    assert lu_ls(target.pid) == []
    assert get_all(port) == ORIGINAL
    values, _ = controller(
        target.pid,
        "?%s" % CHANGED,
        "?[shoplib.TAX, hasattr(shoplib, 'math')]",
        "?shoplib.Cart.describe.__code__ is shoplib._orig['describe']",
    )
    # TAX is back; `math`, which the predefine added, stays (reverted bodies still running may use it).
    assert values == [[], [0.2, True], True]
    load.stop()
    assert target.alive()
    target.kill()
    assert "Traceback" not in target.stderr_text()


BAD_PATCHES = {
    # name: (text, fragments of the one-line error)
    "syntax.py": (
        "from lu_payloads import Redefine, UpdateManager\n\nx = )\ndef price(n):\n    return 0\n",
        ["syntax.py:3", "SyntaxError"],
    ),
    "raises.py": (
        "from lu_payloads import Redefine, UpdateManager\n"
        "def price(n, unit=10):\n    return 0\n"
        "UpdateManager.apply_update(Redefine('shoplib', None, {'price': price}))\n"
        "x = 1\n"
        "raise RuntimeError('boom in patch')\n",
        ["raises.py:6", "RuntimeError", "boom in patch"],
    ),
    "missing.py": (
        "from lu_payloads import Instrument, Redefine, UpdateManager\n"
        "def price(n, unit=10):\n    return 0\n"
        "UpdateManager.apply_update(Redefine('shoplib', None, {'price': price}))\n"
        "UpdateManager.apply_update(Instrument(['shoplib.Cart.total', 'shoplib.no_such_function',"
        " 'shoplib.rounder'], {'func_before': print}))\n",
        ["missing.py:5", "no_such_function"],
    ),
    "typo.py": (
        "from lu_payloads import Redefine, UpdateManager\n"
        "def pirce(n, unit=10):\n    return 0\n"
        "UpdateManager.apply_update(Redefine('shoplib', None, {'pirce': pirce}))\n",
        ["typo.py:4", "shoplib.pirce does not exist (did you mean shoplib.price?)", "'+pirce'"],
    ),
    "missing_class.py": (
        "from lu_payloads import Redefine, UpdateManager\n"
        "def price(n, unit=10):\n    return 0\n"
        "UpdateManager.apply_update(Redefine('shoplib', None, {'price': price, "
        "'NoSuchClass.meth': price, 'Cart.total': price}))\n",
        ["missing_class.py:4", "NoSuchClass"],
    ),
    "outside.py": (
        "from lu_payloads import Instrument, UpdateManager\n"
        "UpdateManager.apply_update(Instrument('shoplib.price', {('line_before', (%d,)): print}))\n"
        % line_of("total-gross"),
        ["outside.py:2", str(line_of("total-gross"))],
    ),
    "nosource.py": (
        "from lu_payloads import Instrument, UpdateManager\n"
        "UpdateManager.apply_update(Instrument('shoplib.made', {'func_before': print}))\n",
        ["nosource.py:2", "shoplib.made", "source"],
    ),
}


@pytest.mark.parametrize("python", EVERY)
def test_bad_input_applies_nothing(python, start_target, tmp_path):
    target, port, app = start_shop(start_target, python, tmp_path)
    controller(target.pid, STASH)
    # One update in force, so that "unchanged" means more than "empty".
    [first] = lu_patch(
        target.pid,
        write(
            tmp_path,
            "count.py",
            (
                "import shoplib\nfrom lu_payloads import Instrument, UpdateManager\nshoplib._n = [0]\n"
                "def count(info):\n    shoplib._n[0] += 1\n"
                "UpdateManager.apply_update(Instrument('shoplib.Cart.total', {'func_before': (count, None)}))\n"
            ),
        ),
    )
    before = lu_ls(target.pid)
    assert get_all(port) == ORIGINAL

    def unchanged():
        # Behaviour after each refusal; `lu ls` below, once: whatever a refused patch applied would show there.
        assert get_all(port) == ORIGINAL

    for name, (text, fragments) in BAD_PATCHES.items():
        result = run_lu("patch", target.pid, write(tmp_path, name, text))
        assert_one_line_error(result, *fragments)
        unchanged()
    assert_one_line_error(run_lu("revert", target.pid, first + 40), str(first + 40))
    assert_one_line_error(run_lu("revert", target.pid, first, first + 41), str(first + 41))  # none reverted
    assert_one_line_error(run_lu("patch", target.pid, str(tmp_path / "absent.py")), "absent.py")
    unchanged()
    assert lu_ls(target.pid) == before
    values, _ = controller(target.pid, "?%s" % CHANGED)
    assert values == [["total"]]

    # The controller reports a bad patch on stderr and applies nothing.
    result = run_lu("attach", target.pid, input="patch(%r)\n" % str(tmp_path / "raises.py"))
    assert result.returncode == 0 and "raises.py:6" in result.stderr and "Traceback" not in result.stderr
    unchanged()

    # A source file edited since the process loaded it: instrumenting refuses stale source.
    shoplib_file = app / "shoplib" / "__init__.py"
    shoplib_file.write_text(shoplib_file.read_text().replace("return n * unit", "return n * unit * 2"))
    result = run_lu(
        "patch",
        target.pid,
        write(
            tmp_path,
            "stale.py",
            (
                "from lu_payloads import Instrument, UpdateManager\n"
                "UpdateManager.apply_update(Instrument('shoplib.price', {'func_before': print}))\n"
            ),
        ),
    )
    assert_one_line_error(result, "stale.py:2", "shoplib.price", "edited")
    unchanged()
    assert lu_ls(target.pid) == before

    # A failed patch consumed no id.
    [nxt] = lu_patch(
        target.pid,
        write(
            tmp_path,
            "ok.py",
            (
                "from lu_payloads import Instrument, UpdateManager\n"
                "UpdateManager.apply_update(Instrument('shoplib.Cart.fmt', {'func_before': print}))\n"
            ),
        ),
    )
    assert nxt == first + 1
    assert target.alive()


HOOKS_RAISE_PATCH = '''\
from lu_payloads import Instrument, Redefine, UpdateManager

def bad(*args):
    return 1 / 0

def rounder(x):
    return round(x, digits) + 1000

UpdateManager.apply_update(Instrument(['shoplib.price', 'shoplib.Cart.total', 'shoplib.fetch_price',
                                       'shoplib.items', 'shoplib.rebate', 'shoplib.Cart.discount'],
                                      {'func_before': bad, 'func_after': bad, 'suspend': bad, 'resume': bad}))
UpdateManager.apply_update(Instrument('shoplib.Cart.total', {('line_after', (%d,)): bad}))
UpdateManager.apply_update(Redefine('shoplib', None, {'rounder': rounder}))
'''


@pytest.mark.parametrize("python", EVERY)
def test_hooks_that_raise_and_detach(python, start_target, tmp_path):
    target, port, _app = start_shop(start_target, python, tmp_path)
    controller(target.pid, STASH)
    load = Load(port)
    expected = dict(ORIGINAL, rounder=1001.23, quote="q:1024.0")
    ids = lu_patch(target.pid, write(tmp_path, "hooks.py", HOOKS_RAISE_PATCH % line_of("total-gross")))
    assert len(ids) == 3
    for _ in range(5):
        assert get_all(port) == expected  # the service keeps answering correctly
    updates = lu_ls(target.pid)
    assert [u["kind"] for u in updates] == ["instrument", "instrument", "redefine"]
    for instrument in updates[:2]:
        assert instrument["hook_errors"] > 0
        assert "ZeroDivisionError" in instrument["last_hook_error"]
    table = ok(run_lu("ls", target.pid))
    assert "shoplib.price" in table

    # A Redefine on top, then detach: everything is reverted before the agent stops.
    [big_id] = lu_patch(target.pid, write(tmp_path, "big.py", BIG_PATCH))
    assert get_all(port) == PATCHED
    out = ok(run_lu("detach", target.pid))
    for uid in ids + [big_id]:
        assert str(uid) in out
    assert get_all(port) == ORIGINAL
    assert_one_line_error(run_lu("ls", target.pid), "no lu agent")
    # Inject again: a fresh agent with nothing applied, original code objects running.
    ok(run_lu("inject", target.pid))
    assert lu_ls(target.pid) == []
    values, _ = controller(
        target.pid,
        "?%s" % CHANGED,
        "?shoplib.rounder.__code__ is shoplib._orig['rounder']",
        "?[shoplib.price.__doc__, shoplib.price.__defaults__, hasattr(shoplib, 'bonus')]",
    )
    # `bonus`, a helper the patch added to the module, stays after revert (see
    # test_revert_keeps_helpers_of_running_frames); the function runs its original code.
    assert values == [[], True, ["Price of n items.", [10], True]]
    assert get_all(port) == ORIGINAL
    load.stop()
    assert target.alive()
    target.kill()
    assert "Traceback" not in target.stderr_text()


BUG_HELPER_PATCH = '''\
from lu_payloads import Redefine, UpdateManager

def helper(i):
    return -i

def items(n):
    for i in range(n):
        yield helper(i)

UpdateManager.apply_update(Redefine('shoplib', None, {'items': items}))
'''


@pytest.mark.parametrize("python", EVERY)
def test_revert_keeps_helpers_of_running_frames(python, start_target, tmp_path):
    """Revert leaves the names a Redefine copied into the module (here `helper`): frames of the
    redefined body still running (a suspended generator here; under load, an async body that awaited
    before calling its helper) finish on their code and must still find them.
    """
    target, _port, _app = start_shop(start_target, python, tmp_path)
    [uid] = lu_patch(target.pid, write(tmp_path, "helper.py", BUG_HELPER_PATCH))
    values, _ = controller(target.pid, "shoplib._gen = shoplib.items(3)", "?next(shoplib._gen)")
    assert values == [0]  # a frame of the redefined body is suspended between two helper() calls
    ok(run_lu("revert", target.pid, uid))
    result = run_lu("attach", target.pid, input="import shoplib\nprint('@@', list(shoplib._gen))\n")
    assert "NameError" not in result.stderr, result.stderr
    assert "@@ [-1, -2]" in result.stdout


# ----------------------------------------------------------------------------- examples/
def start_example(script, *args):
    """Start examples/<script> (they print a first line with their pid and port, not "ready")."""
    path = os.path.join(EXAMPLES, script)
    proc = subprocess.Popen(
        [sys.executable, "-u", path] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/tmp"
    )
    first = proc.stdout.readline()
    assert "pid %d" % proc.pid in first, (first, proc.stderr.read() if proc.poll() is not None else "")
    return proc, first


def test_examples_run_and_take_their_patches(tmp_path):
    """The example programs run, and the example patches apply with the real CLI (one interpreter)."""
    started = []
    try:
        shop, first = start_example("shop_service.py", "--port", "0")
        started.append(shop)
        port = int(re.search(r"127\.0\.0\.1:(\d+)", first).group(1))

        def get(path):
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=10) as response:
                return json.loads(response.read().decode())

        assert get("/price?item=apple&qty=12")["price"] == 0.6  # the bug
        ok(run_lu("inject", shop.pid))
        [fix] = lu_patch(shop.pid, os.path.join(EXAMPLES, "patches", "fix_price.py"))
        assert get("/price?item=apple&qty=12")["price"] == 5.4
        assert get("/cart?apple=3&melon=10")["total"] == 28.5
        [_log] = lu_patch(shop.pid, os.path.join(EXAMPLES, "patches", "log_calls.py"))
        assert get("/cart?apple=3&melon=10")["total"] == 28.5
        assert [u["kind"] for u in lu_ls(shop.pid)] == ["redefine", "instrument"]
        assert str(fix) in ok(run_lu("revert", shop.pid, fix))
        assert get("/price?item=apple&qty=12")["price"] == 0.6
        ok(run_lu("detach", shop.pid))
        shop.kill()
        log_text = shop.stderr.read()
        assert "[lu]" in log_text and "shoplib.Cart.total returned 28.5" in log_text, log_text
        assert "Traceback" not in log_text

        service, first = start_example("async_service.py", "--port", "0")
        started.append(service)
        with socket.create_connection(("127.0.0.1", int(first.split()[-1])), timeout=10) as sock:
            sock.sendall(b"melon 3\n")
            assert sock.makefile().readline() == "melon 3 9.0\n"

        worker, first = start_example("worker.py")
        started.append(worker)
        values, _ = controller(worker.pid, "import __main__, time; time.sleep(0.3)", "?__main__.STATS['done'] > 0")
        assert values == [True]
    finally:
        for proc in started:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)


def test_patch_revert_and_detach_speak_json(start_target, tmp_path):
    """What a script reads: each of them prints one JSON document with --json."""
    target, port, _app = start_shop(start_target, sys.executable, tmp_path)
    fix = write(
        tmp_path,
        "fix.py",
        "from lu_payloads import Redefine, UpdateManager\n\n\ndef price(n):\n    return 7\n\n\n"
        "UpdateManager.apply_update(Redefine('shoplib', None, {'price': price}))\n",
    )
    patched = json.loads(ok(run_lu("patch", target.pid, fix, "--json")))
    (uid,) = patched["ids"]
    assert [u["targets"] for u in patched["updates"]] == [["shoplib.price"]]
    assert json.loads(ok(run_lu("revert", target.pid, uid, "--json"))) == {"reverted": [uid]}
    [again] = json.loads(ok(run_lu("patch", target.pid, fix, "--json")))["ids"]
    assert json.loads(ok(run_lu("detach", target.pid, "--json"))) == {"stopped": [target.pid], "reverted": [again]}
    assert json.loads(ok(run_lu("detach", target.pid, "--json"))) == {"stopped": [], "reverted": []}
    assert get_all(port) == ORIGINAL
