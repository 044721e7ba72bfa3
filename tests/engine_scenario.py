"""Scenario driver for tests/test_engine.py: runs inside one target interpreter.

Usage: python engine_scenario.py PAYLOADS_DIR WORK_DIR
Writes the scenario modules into WORK_DIR, loads lu_payloads by path, runs
every check and prints one JSON object {check_name: [ok, detail]} on stdout.
"""

import asyncio
import functools
import importlib
import importlib.util
import json
import os
import sys
import threading
import time
import traceback

PAYLOADS, WORK = sys.argv[1], sys.argv[2]


def load_payloads():
    """Import the payloads folder as the package `lu_payloads`, the way an injected agent gets it."""
    init = os.path.join(PAYLOADS, "__init__.py")
    spec = importlib.util.spec_from_file_location("lu_payloads", init, submodule_search_locations=[PAYLOADS])
    package = importlib.util.module_from_spec(spec)
    sys.modules["lu_payloads"] = package
    spec.loader.exec_module(package)


load_payloads()
# The package exists only once loaded by path, above.
from lu_payloads.engine import Instrument, Redefine, resolve_pattern  # noqa: E402
from lu_payloads.engine import UpdateManager as U  # noqa: E402
from lu_payloads.errors import LuError  # noqa: E402

SHOP = '''\
import functools


class Base:
    def total(self, x):
        return x + 1


class Cart(Base):
    def __init__(self):
        self.__items = [1, 2]

    def total(self, x):
        y = super().total(x)
        z = y + sum(self.__items)
        return z

    @classmethod
    def make(cls, n):
        return [cls() for _ in range(n)]

    @staticmethod
    def tax(v, rate=0.5):
        return v * rate

    @property
    def size(self):
        return len(self.__items)

    @size.setter
    def size(self, n):
        self.__items = list(range(n))

    def fail(self, v):
        w = v + 1
        raise ValueError("bad %d" % w)


def deco(f):
    @functools.wraps(f)
    def wrapper(*a, **k):
        return f(*a, **k) * 10
    return wrapper


@deco
def decorated(a, b=2):
    return a + b


def plain(a, b=2, *args, c=3, d, **kw):
    s = a + b + c + d
    if s > 1000:
        return -1
    for v in args:
        s += v
    return s


def make_adder(k):
    def add(v):
        return v + k
    return add


adder = make_adder(100)


def gen(n):
    for i in range(n):
        got = yield i
    return "done"


async def coro(x):
    await asyncio.sleep(0)
    y = x * 2
    await asyncio.sleep(0)
    return y


def unbound(flag):
    if flag:
        late = 5
    marker = 1
    return marker


def looped(n, started, go):
    started.set()
    go.wait(5)
    return n * 2


def spin(n):
    return n + 1


import asyncio
'''

SUBPKG_INIT = '''\
def top():
    return 1
'''
SUBPKG_SUB = '''\
def deep():
    return 2


class K:
    def m(self):
        return 3
'''

ATREE = """\
import asyncio
import threading
import time


def cpu(ms):
    end = time.perf_counter() + ms / 1000.0
    while time.perf_counter() < end:
        pass


async def leaf():
    cpu(20)
    await asyncio.sleep(0.05)
    return 1


async def mid():
    await leaf()
    cpu(10)
    return 2


async def handler():
    await mid()
    await asyncio.sleep(0.03)


async def fails():
    await asyncio.sleep(0)
    raise ValueError("no")


async def catches():
    try:
        await fails()
    except ValueError:
        cpu(2)
    try:
        await asyncio.wait_for(asyncio.sleep(1), 0.01)
    except asyncio.TimeoutError:
        cpu(2)
    return 3


async def stuck():
    await asyncio.sleep(10)


async def awaits_stuck():
    await stuck()


def gen(n):
    for i in range(n):
        cpu(1)
        yield i


def delegates():
    yield from gen(3)
    yield "last"


async def agen(n):
    for i in range(n):
        await asyncio.sleep(0)
        yield i


async def consumes():
    return [i async for i in agen(3)]


def blocked(event):
    event.wait(5)


async def ticks(n):
    for i in range(n):
        await asyncio.sleep(0.02)
        yield i


async def streams():
    async for _ in ticks(3):
        cpu(2)


async def locked(lock):
    async with lock:
        cpu(5)


async def other():
    cpu(1)
"""


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        fh.write(text)


write(os.path.join(WORK, "shop.py"), SHOP)
write(os.path.join(WORK, "pkg", "__init__.py"), SUBPKG_INIT)
write(os.path.join(WORK, "pkg", "sub.py"), SUBPKG_SUB)
write(os.path.join(WORK, "stale.py"), "def f(x):\n    return x + 1\n")
write(os.path.join(WORK, "atree.py"), ATREE)

# Plain functions only: what the compiled timer times (tools/calltree.py chooses it for them).
CTREE = """\
import threading


def leaf(x):
    return x + 1


def fails(x):
    raise ValueError(x)


def mid(n):
    if n:
        return mid(n - 1)
    try:
        fails(n)
    except ValueError:
        pass
    return leaf(n)


def fan(n):
    for i in range(n):
        KIDS[i % len(KIDS)](i)


def top(rounds):
    total = 0
    for i in range(rounds):
        total += mid(3)
    fan(60)
    return total


def deep(n):
    return deep(n - 1) if n else 0


def blocked(event):
    event.wait(10)


def in_threads(count, rounds):
    run_in_threads(count, "worker", top, rounds)


def run_in_threads(count, name, target, *args):
    workers = [threading.Thread(target=target, args=args, name="%s-%d" % (name, i)) for i in range(count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def numbers(n):
    yield from range(n)


def looped(n):
    total = 0
    for i in range(n):
        total += i  # line B
        if i % 3 == 0:  # line C
            continue
        total ^= leaf(i)  # line D
    return total


def lines_in_threads(count, n):
    run_in_threads(count, "liner", looped, n)
"""
# More children than the compiled timer searches in order (it indexes them beyond 8).
CTREE += "".join("\n\ndef kid%d(x):\n    return x\n" % i for i in range(20))
CTREE += "\n\nKIDS = [%s]\n" % ", ".join("kid%d" % i for i in range(20))
write(os.path.join(WORK, "ctree.py"), CTREE)
sys.path.insert(0, WORK)
import atree  # noqa: E402
import ctree  # noqa: E402
import pkg.sub  # noqa: E402, F401  (loaded so that pkg.** finds its submodule)
import shop  # noqa: E402
import stale  # noqa: E402
from shop import plain as imported_plain  # noqa: E402

results = {}


def check(fn):
    name = fn.__name__
    try:
        fn()
        results[name] = [True, ""]
    except Exception:
        results[name] = [False, traceback.format_exc()]
    finally:
        try:
            U.revert_all()
        except Exception:
            results.setdefault(name + "_revert_all", [False, traceback.format_exc()])
    return fn


def expect_luerror(fn, *needles):
    try:
        fn()
    except LuError as e:
        msg = str(e)
        assert "\n" not in msg, msg
        for n in needles:
            assert n in msg, "%r not in %r" % (n, msg)
        return msg
    raise AssertionError("no LuError raised")


def originals():
    return {n: f.__code__ for n, f in resolve_pattern("shop.*")}


ORIG = originals()


def assert_pristine():
    for n, f in resolve_pattern("shop.*"):
        assert f.__code__ is ORIG[n], "%s not back to its original code object" % n


# ---------------------------------------------------------------- checks
@check
def resolve_patterns():
    names = [n for n, _ in resolve_pattern("shop.*")]
    for want in (
        "shop.Cart.total",
        "shop.Cart.make",
        "shop.Cart.tax",
        "shop.Cart.size.fget",
        "shop.Cart.size.fset",
        "shop.decorated",
        "shop.adder",
        "shop.gen",
        "shop.coro",
        "shop.Base.total",
    ):
        assert want in names, (want, names)
    assert not any(n.startswith(("shop.functools", "shop.asyncio")) for n in names), names
    deep = [n for n, _ in resolve_pattern("pkg.**")]
    assert deep == ["pkg.top", "pkg.sub.deep", "pkg.sub.K.m"], deep
    assert [n for n, _ in resolve_pattern("pkg.*")] == ["pkg.top"]
    main = [n for n, _ in resolve_pattern("__main__.**")]
    assert "__main__.check" in main and "__main__.write" in main, main
    ((_n, f),) = resolve_pattern("shop.decorated")
    assert f is shop.decorated.__wrapped__
    assert len(resolve_pattern("shop.Cart.size")) == 2
    expect_luerror(lambda: resolve_pattern("shop.nope"), "shop.nope", "nope")
    expect_luerror(lambda: resolve_pattern("nosuchmod.*"), "nosuchmod")
    expect_luerror(lambda: resolve_pattern("shop.Cart.nope.*"), "shop.Cart.nope")
    expect_luerror(lambda: resolve_pattern("stale.g"), "stale.g")


@check
def plain_function_args_result_identity():
    ev = []
    f = shop.plain
    code, defaults, kwd = f.__code__, f.__defaults__, f.__kwdefaults__
    uid = U.apply_update(
        Instrument(
            "shop.plain",
            {
                "func_before": lambda i, a: ev.append(("b", i.name, a)),
                "func_after": lambda i, r, e: ev.append(("a", r, e)),
            },
        )
    )
    assert isinstance(uid, int)
    assert shop.plain is f and f.__code__ is not code
    assert f.__defaults__ is defaults and f.__kwdefaults__ is kwd
    assert f(1, d=4) == 10
    assert f(1, 2, 5, 6, c=1, d=1, z=9) == 16
    assert f(1000, d=0) == -1  # early return
    assert imported_plain(1, d=4) == 10  # reference taken before the patch
    assert ev[0] == ("b", "shop.plain", {"a": 1, "b": 2, "args": (), "c": 3, "d": 4, "kw": {}}), ev[0]
    assert ev[1] == ("a", 10, None)
    assert ev[2][2] == {"a": 1, "b": 2, "args": (5, 6), "c": 1, "d": 1, "kw": {"z": 9}}
    assert ev[5] == ("a", -1, None)
    assert len(ev) == 8
    U.revert(uid)
    assert f.__code__ is code
    assert U.ls() == []


@check
def closure_kept_by_module():
    ev = []
    U.apply_update(Instrument("shop.adder", {"func_after": lambda i, r, e: ev.append(r)}))
    assert shop.adder(1) == 101 and ev == [101]
    other = shop.make_adder(1)
    assert other(1) == 2 and ev == [101]  # only that function object changed
    U.revert_all()
    assert_pristine()


@check
def methods_of_every_kind():
    ev = []

    def hook(info, args):
        ev.append((info.qualname, sorted(args)))

    uid = U.apply_update(
        Instrument(["shop.Cart.total", "shop.Cart.make", "shop.Cart.tax", "shop.Cart.size"], {"func_before": hook})
    )
    c = shop.Cart()
    assert c.total(5) == 9
    assert len(shop.Cart.make(2)) == 2
    assert shop.Cart.tax(4) == 2.0 and c.tax(4, 1) == 4
    assert c.size == 2
    c.size = 5
    assert c.size == 5
    got = [q for q, _ in ev]
    assert got == ["Cart.total", "Cart.make", "Cart.tax", "Cart.tax", "Cart.size", "Cart.size", "Cart.size"], got
    assert ev[1][1] == ["cls", "n"] and ev[5][1] == ["n", "self"]
    assert len(U.ls()[0]["targets"]) == 5, U.ls()
    U.revert(uid)
    assert_pristine()


@check
def super_and_line_hooks():
    ev = []
    lines = {}
    for i, text in enumerate(SHOP.splitlines(), 1):
        if "y = super().total(x)" in text:
            lines["y"] = i
        if "z = y + sum" in text:
            lines["z"] = i
    U.apply_update(
        Instrument(
            "shop.Cart.total",
            [
                (("line_before", [lines["y"]]), lambda i, ln, loc: ev.append(("before", ln, sorted(loc)))),
                (("line_after", (lines["y"], lines["z"])), lambda i, ln, loc: ev.append(("after", ln, dict(loc)))),
                (("line_after", [lines["z"]]), (lambda i, ln, d: ev.append(("named", ln, d)), ["z", "x", "self.size"])),
            ],
        )
    )
    c = shop.Cart()
    assert c.total(1) == 5
    assert ev[0] == ("before", lines["y"], ["__class__", "self", "x"]), ev[0]
    assert ev[1][0:2] == ("after", lines["y"]) and ev[1][2]["y"] == 2 and "__lu_rv__" not in ev[1][2]
    assert ev[2][2]["z"] == 5
    assert ev[3] == ("named", lines["z"], {"z": 5, "x": 1, "self.size": 2}), ev[3]
    if sys.version_info >= (3, 11):
        assert shop.Cart.total.__code__.co_qualname == "Cart.total"
    # named capture when a variable is unbound: it is left out, no error
    ev2 = []
    ln = SHOP.splitlines().index("    marker = 1") + 1
    uid = U.apply_update(
        Instrument(
            "shop.unbound", {("line_after", (ln,)): (lambda i, lineno, d: ev2.append(d), ["late", "marker", "flag"])}
        )
    )
    assert shop.unbound(False) == 1 and shop.unbound(True) == 1
    assert ev2 == [{"marker": 1, "flag": False}, {"late": 5, "marker": 1, "flag": True}], ev2
    assert U.ls()[-1]["hook_errors"] == 0 and U.ls()[-1]["id"] == uid


@check
def decorated_function_changed_inside_wrapper():
    ev = []
    wrapper = shop.decorated
    inner = wrapper.__wrapped__
    wcode, icode = wrapper.__code__, inner.__code__
    U.apply_update(Instrument("shop.decorated", {"func_after": lambda i, r, e: ev.append(r)}))
    assert shop.decorated(1) == 30 and ev == [3]
    assert wrapper.__code__ is wcode and inner.__code__ is not icode
    U.revert_all()
    assert inner.__code__ is icode


@check
def generator_points():
    ev = []
    U.apply_update(
        Instrument(
            "shop.gen",
            {
                "func_before": (lambda i: ev.append("before"), None),
                "func_after": lambda i, r, e: ev.append(("after", r, type(e).__name__ if e else None)),
                "suspend": lambda i: ev.append("s"),
                "resume": lambda i: ev.append("r"),
            },
        )
    )
    g = shop.gen(2)
    assert ev == []  # nothing before the first start
    assert next(g) == 0 and ev == ["before", "s"]
    assert g.send("x") == 1
    try:
        next(g)
        raise AssertionError("no StopIteration")
    except StopIteration as e:
        assert e.value == "done"
    assert ev == ["before", "s", "r", "s", "r", ("after", "done", None)], ev
    del ev[:]
    g = shop.gen(5)
    next(g)
    g.close()
    assert ev == ["before", "s", ("after", None, "GeneratorExit")], ev


@check
def async_points():
    ev = []
    U.apply_update(
        Instrument(
            "shop.coro",
            {
                "func_before": lambda i, a: ev.append(("before", a)),
                "func_after": lambda i, r, e: ev.append(("after", r)),
                "suspend": lambda i: ev.append("s"),
                "resume": lambda i: ev.append("r"),
            },
        )
    )
    assert asyncio.run(shop.coro(4)) == 8
    assert ev == [("before", {"x": 4}), "s", "r", "s", "r", ("after", 8)], ev


@check
def defaults_and_kwonly_preserved():
    f = shop.plain
    before = (f.__defaults__, f.__kwdefaults__, f.__doc__, dict(f.__annotations__), dict(f.__dict__))
    got = []
    U.apply_update(Instrument("shop.plain", {"func_before": (lambda i, d: got.append(d), ["a", "d"])}))
    assert (f.__defaults__, f.__kwdefaults__, f.__doc__, dict(f.__annotations__), dict(f.__dict__)) == before
    assert f(1, d=1) == 7 and got == [{"a": 1, "d": 1}], got
    try:
        f(1)
        raise AssertionError("missing kw-only accepted")
    except TypeError as e:
        assert "d" in str(e)


@check
def traceback_unchanged():
    def tb_of():
        try:
            shop.Cart().fail(1)
        except ValueError:
            return [(fr.name, fr.lineno, fr.filename) for fr in traceback.extract_tb(sys.exc_info()[2])][1:]

    plain_tb = tb_of()
    ev = []
    U.apply_update(
        Instrument(
            "shop.Cart.fail", {"func_before": lambda i, a: None, "func_after": lambda i, r, e: ev.append(repr(e))}
        )
    )
    inst_tb = tb_of()
    assert inst_tb == plain_tb, (inst_tb, plain_tb)
    assert plain_tb[-1][0] == "fail" and SHOP.splitlines()[plain_tb[-1][1] - 1].strip().startswith("raise")
    assert ev == ["ValueError('bad 2')"], ev


@check
def thread_running_while_swapped():
    started, go = threading.Event(), threading.Event()
    out = []
    t = threading.Thread(target=lambda: out.append(shop.looped(3, started, go)))
    t.start()
    assert started.wait(5)
    ev = []
    uid = U.apply_update(Instrument("shop.looped", {"func_after": lambda i, r, e: ev.append(r)}))
    go.set()
    t.join(5)
    assert out == [6] and ev == []  # the running frame finished on its old code
    assert shop.looped(4, threading.Event(), go) == 8 and ev == [8]
    U.revert(uid)
    # hammer: a thread calls spin in a loop while updates come and go
    stop = threading.Event()
    bad = []

    def worker():
        n = 0
        while not stop.is_set():
            if shop.spin(n) != n + 1:
                bad.append(n)
            n += 1

    w = threading.Thread(target=worker)
    w.start()
    for _ in range(30):
        a = U.apply_update(Instrument("shop.spin", {"func_before": lambda i, a: None}))
        b = U.apply_update(Instrument("shop.spin", {"func_after": lambda i, r, e: None}))
        U.revert(a)
        U.revert(b)
    stop.set()
    w.join(5)
    assert not bad and shop.spin.__code__ is ORIG["shop.spin"]


def revert_two_updates(order):
    ev = []
    u1 = U.apply_update(Instrument("shop.spin", {"func_before": lambda i, a: ev.append(1)}))
    u2 = U.apply_update(
        Instrument(
            "shop.spin", {"func_before": lambda i, a: ev.append(2), "func_after": lambda i, r, e: ev.append(("r", r))}
        )
    )
    assert shop.spin(1) == 2 and ev == [1, 2, ("r", 2)], ev
    ids = (u1, u2)
    U.revert(ids[order[0]])
    del ev[:]
    assert shop.spin(1) == 2
    assert ev == ([2, ("r", 2)] if order[0] == 0 else [1]), ev
    U.revert(ids[order[1]])
    del ev[:]
    assert shop.spin(1) == 2 and ev == []
    assert shop.spin.__code__ is ORIG["shop.spin"]


@check
def two_updates_reverted_in_both_orders():
    for order in ((0, 1), (1, 0)):
        revert_two_updates(order)


def _new_total(self, x):
    y = super().total(x)
    return y * 100


@check
def redefine_in_place():
    c = shop.Cart()
    f = shop.Cart.__dict__["total"]

    def new_plain(a, b=20, *args, c=30, d=0, **kw):
        """new doc"""
        return ("new", a, b, c, d)

    uid = U.apply_update(Redefine("shop", None, {"shop.plain": new_plain, "shop.Cart.total": _new_total}))
    assert shop.plain is imported_plain
    assert imported_plain(1) == ("new", 1, 20, 30, 0)
    assert shop.plain.__defaults__ == (20,) and shop.plain.__kwdefaults__ == {"c": 30, "d": 0}
    assert shop.plain.__doc__ == "new doc"
    assert c.total(1) == 200 and shop.Cart.__dict__["total"] is f
    U.revert(uid)
    assert imported_plain(1, d=1) == 7 and shop.plain.__defaults__ == (2,) and shop.plain.__doc__ is None
    assert c.total(1) == 5
    assert_pristine()


def stack_instrument_on_redefine(revert_first):
    ev = []

    def new_spin(n):
        return n + 1000

    r = U.apply_update(Redefine("shop", None, {"spin": new_spin}))
    i = U.apply_update(Instrument("shop.spin", {"func_after": lambda inf, res, e: ev.append(res)}))
    assert shop.spin(1) == 1001 and ev == [1001]
    if revert_first == "redefine":
        U.revert(r)
        assert shop.spin(1) == 2 and ev == [1001, 2]  # instrumentation kept on the original
        U.revert(i)
    else:
        U.revert(i)
        assert shop.spin(1) == 1001 and ev == [1001]
        U.revert(r)
    assert shop.spin(1) == 2 and shop.spin.__code__ is ORIG["shop.spin"]


@check
def instrument_over_redefine():
    for revert_first in ("redefine", "instrument"):
        stack_instrument_on_redefine(revert_first)


@check
def redefine_property_and_new_method():
    c = shop.Cart()
    getter, setter = shop.Cart.size.fget, shop.Cart.size.fset

    class P:
        @property
        def size(self):
            return -1

        @size.setter
        def size(self, n):
            self._n = n

        def extra(self, x):
            return ("extra", super().total(x))

    uid = U.apply_update(Redefine("shop", None, {"Cart.size": P.size, "+Cart.extra": P.extra}))
    assert shop.Cart.size.fget is getter and shop.Cart.size.fset is setter
    assert c.size == -1
    c.size = 9
    assert c._n == 9
    assert c.extra(1) == ("extra", 2), c.extra(1)  # super() in a method added to the class: Base.total
    assert shop.Cart.extra.__qualname__ == "Cart.extra"
    U.revert(uid)
    assert c.size == 2 and "extra" not in shop.Cart.__dict__


@check
def redefine_of_a_name_that_does_not_exist_is_refused_unless_it_says_it_adds():
    def spin(n):
        return "typo"

    before = U.ls()
    expect_luerror(
        lambda: U.apply_update(Redefine("shop", None, {"shop.spni": spin})),
        "shop.spni does not exist (did you mean shop.spin?)",
        "'+shop.spni'",
    )
    expect_luerror(lambda: U.apply_update(Redefine("shop", None, {"+shop.spin": spin})), "shop.spin exists already")
    assert U.ls() == before and not hasattr(shop, "spni")


@check
def annotations_are_carried_never_evaluated():
    """3.14 (PEP 649): reading __annotations__ runs the program's annotation code; the engine must not."""
    lazy = sys.version_info >= (3, 14)
    text = "" if lazy else "from __future__ import annotations\n"  # before 3.14: strings, as lazy as it gets
    text += "calls = []\n\n\ndef lazy(x: Missing) -> calls.append('evaluated') or int:\n    return x + 1\n"
    write(os.path.join(WORK, "lazy_ann.py"), text)
    import lazy_ann

    original = getattr(lazy_ann.lazy, "__annotate__", None)
    seen = []
    uid = U.apply_update(Instrument("lazy_ann.lazy", {"func_after": lambda info, r, e: seen.append(r)}))
    assert lazy_ann.lazy(1) == 2 and seen == [2]
    head = "" if lazy else "from __future__ import annotations\n"
    write(os.path.join(WORK, "lazy_patch.py"), head + "def lazy(x: AlsoMissing):\n    return x + 10\n")
    import lazy_patch

    patched = U.apply_update(Redefine("lazy_ann", None, {"lazy": lazy_patch.lazy}))
    assert lazy_ann.lazy(1) == 11
    U.revert(patched)
    U.revert(uid)
    assert lazy_ann.lazy(1) == 2 and lazy_ann.calls == [], lazy_ann.calls
    if lazy:
        assert lazy_ann.lazy.__annotate__ is original  # still lazy: the program's first read evaluates them
        try:
            made = lazy_ann.lazy.__annotations__
        except NameError:
            pass
        else:
            raise AssertionError("annotations %r: Missing should be undefined" % (made,))
    else:
        assert lazy_ann.lazy.__annotations__ == {"x": "Missing", "return": "calls.append('evaluated') or int"}


@check
def patterns_find_functions_a_patch_redefined_and_cells_of_a_module_without_a_file():
    def spin(n):
        return "patched spin"

    before = {name for name, _ in resolve_pattern("shop.*")}
    uid = U.apply_update(Redefine("shop", None, {"shop.spin": spin}))
    try:
        assert {name for name, _ in resolve_pattern("shop.*")} == before  # spin runs code from this file now
    finally:
        U.revert(uid)

    import linecache
    import types as _types

    cell = "def cell_f(x):\n    return x + 1\n"
    linecache.cache["<cell-7>"] = (len(cell), None, cell.splitlines(True), "<cell-7>")
    notebook = _types.ModuleType("lu_notebook_main")  # a kernel's __main__: no __file__, code from cells
    sys.modules[notebook.__name__] = notebook
    try:
        exec(compile(cell, "<cell-7>", "exec"), notebook.__dict__)
        found = resolve_pattern("lu_notebook_main.**")
        assert [name for name, _ in found] == ["lu_notebook_main.cell_f"], found
        seen = []
        uid = U.apply_update(Instrument("lu_notebook_main.**", {"func_after": lambda info, r, e: seen.append(r)}))
        assert notebook.cell_f(1) == 2 and seen == [2]
        U.revert(uid)
    finally:
        del sys.modules[notebook.__name__]
        linecache.cache.pop("<cell-7>", None)


@check
def hook_errors_counted_not_raised():
    seen = []
    U.add_listener(seen.append)
    try:

        def bad(i, a):
            raise KeyError("oops")

        uid = U.apply_update(Instrument("shop.spin", {"func_before": bad, "func_after": lambda i, r, e: 1 / 0}))
        assert [shop.spin(n) for n in range(5)] == [1, 2, 3, 4, 5]
        (item,) = U.ls()
        assert item["id"] == uid and item["hook_errors"] == 10, item
        assert "ZeroDivisionError" in item["last_hook_error"], item
        assert seen and seen[0]["event"] == "hook_error" and seen[0]["id"] == uid, seen
        assert "KeyError" in seen[0]["error"]
    finally:
        U.remove_listener(seen.append)


PATCH_OK = '''\
from lu_payloads import Instrument, Redefine, UpdateManager
import shop
SCALE = 7

def helper(v):
    return v * SCALE

def pre():
    import json as _lu_test_json

def spin(n):
    return helper(n) + len(_lu_test_json.dumps([]))

def brand_new(v):
    return helper(v) + 1

a = UpdateManager.apply_update(Redefine('shop', pre, {'shop.spin': spin, '+shop.brand_new': brand_new}))
b = UpdateManager.apply_update(Instrument('shop.Cart.tax', {'func_before': lambda i, args: None}))
'''


@check
def patch_file_transaction():
    ids = U.apply_patch(PATCH_OK, "patch_ok.py")
    assert len(ids) == 2 and [x["id"] for x in U.ls()] == ids
    assert shop.spin(2) == 16, shop.spin(2)
    assert shop.brand_new(1) == 8 and shop.brand_new.__module__ == "shop"
    assert shop.brand_new.__globals__ is shop.__dict__
    kinds = [x["kind"] for x in U.ls()]
    assert kinds == ["redefine", "instrument"], kinds
    assert "shop.brand_new" in U.ls()[0]["targets"]
    try:
        shop.spin("x" * 0 + None)
    except TypeError:
        pass
    # line hooks on the redefined body use the patch file's lines
    ln = PATCH_OK.splitlines().index("    return helper(n) + len(_lu_test_json.dumps([]))") + 1
    seen = []
    i = U.apply_update(
        Instrument("shop.spin", {("line_before", (ln,)): lambda inf, lineno, loc: seen.append((lineno, loc))})
    )
    assert shop.spin(3) == 23 and seen == [(ln, {"n": 3})], seen
    expect_luerror(
        lambda: U.apply_update(Instrument("shop.spin", {("line_before", (ln + 50,)): print})),
        "not inside shop.spin",
        "patch_ok.py",
    )
    try:
        shop.spin(None)
        raise AssertionError("no TypeError")
    except TypeError:
        frames = traceback.extract_tb(sys.exc_info()[2])
        assert (frames[-2].filename, frames[-2].name, frames[-2].lineno) == ("patch_ok.py", "spin", ln), frames
        assert frames[-2].line.strip().startswith("return helper(n)"), frames[-2].line
    U.revert(i)
    U.revert(ids[0])
    assert not hasattr(shop, "brand_new")
    # Names the predefine added, and helpers copied from the patch, stay: code
    # still running the reverted body (other threads, suspended generators) may look them up.
    assert "_lu_test_json" in shop.__dict__ and "helper" in shop.__dict__
    assert shop.spin(2) == 3
    U.revert(ids[1])
    assert_pristine()


BAD_PATCHES = {
    "syntax": ("from lu_payloads import Instrument\n\ndef f(:\n    pass\n", "bad_syntax.py:3:", "SyntaxError"),
    "raises": (
        "from lu_payloads import Instrument, UpdateManager\nimport shop\n"
        "UpdateManager.apply_update(Instrument('shop.spin', {'func_before': lambda i, a: None}))\n"
        "x = 1\n\n\ny = undefined_name\n",
        "bad_raises.py:7:",
        "NameError",
    ),
    "missing": (
        "from lu_payloads import Instrument, Redefine, UpdateManager\n"
        "def spin(n):\n    return 0\n"
        "UpdateManager.apply_update(Redefine('shop', None, {'shop.spin': spin}))\n"
        "UpdateManager.apply_update(Instrument('shop.Cart.total', {'func_before': lambda i, a: None}))\n"
        "UpdateManager.apply_update(Instrument('shop.nothere', {'func_before': lambda i, a: None}))\n",
        "bad_missing.py:6:",
        "shop.nothere",
    ),
    "missing_class": (
        "from lu_payloads import Redefine, UpdateManager\n"
        "def spin(n):\n    return 0\n"
        "UpdateManager.apply_update(Redefine('shop', None, {'shop.spin': spin, 'shop.NoClass.m': spin}))\n",
        "bad_missing_class.py:4:",
        "NoClass",
    ),
    "freevars": (
        "from lu_payloads import Redefine, UpdateManager\n"
        "class P:\n    def total(self, x):\n        return super().total(x)\n"
        "def spin(n):\n    return 0\n"
        "UpdateManager.apply_update(Redefine('shop', None, {'shop.spin': spin, 'shop.Base.total': P.total}))\n",
        "bad_freevars.py:7:",
        "__class__",
    ),
    "line_outside": (
        "from lu_payloads import Instrument, UpdateManager\n"
        "UpdateManager.apply_update(Instrument('shop.spin', {('line_before', (1,)): print}))\n",
        "bad_line_outside.py:2:",
        "line 1 is not inside shop.spin",
    ),
}


@check
def bad_patches_apply_nothing():
    for key, (src, where, what) in sorted(BAD_PATCHES.items()):
        fname = "bad_%s.py" % key
        expect_luerror(functools.partial(U.apply_patch, src, fname), where, what)
        assert U.ls() == [], (key, U.ls())
        assert_pristine()
    # ids are not consumed by failures
    a = U.apply_update(Instrument("shop.spin", {"func_before": lambda i, a: None}))
    U.revert(a)
    b = U.apply_update(Instrument("shop.spin", {"func_before": lambda i, a: None}))
    assert b == a + 1, (a, b)


@check
def bad_inputs():
    ln_spin = SHOP.splitlines().index("def spin(n):") + 1
    expect_luerror(
        lambda: U.apply_update(Instrument("shop.spin", {("line_before", (ln_spin + 5,)): print})),
        "line %d is not inside shop.spin" % (ln_spin + 5),
    )
    plain_first = SHOP.splitlines().index("def plain(a, b=2, *args, c=3, d, **kw):") + 1
    expect_luerror(
        lambda: U.apply_update(Instrument("shop.plain", {("line_after", (plain_first,)): print})), "holds no statement"
    )
    expect_luerror(lambda: U.revert(12345), "12345")
    expect_luerror(lambda: U.apply_update(Instrument("shop.*", {"nonsense": print})), "nonsense")
    expect_luerror(lambda: U.apply_update(Instrument("nomod.**", {"func_before": print})), "nomod")
    expect_luerror(lambda: U.apply_update(Instrument("shop.zzz", {"func_before": print})), "shop.zzz")
    # function without source
    exec("def nosrc(x):\n    return x\n", shop.__dict__)
    try:
        expect_luerror(lambda: U.apply_update(Instrument("shop.nosrc", {"func_before": print})), "no source")
    finally:
        del shop.__dict__["nosrc"]
    shop.lam = lambda x: x
    try:
        expect_luerror(lambda: U.apply_update(Instrument("shop.lam", {"func_before": print})), "lambda")
    finally:
        del shop.lam
    # a body needing free variables the original does not have (super() where there was none)
    expect_luerror(
        lambda: U.apply_update(Redefine("shop", None, {"shop.Base.total": _new_total})), "free variables", "__class__"
    )

    # a body not using the closure's variable is fine (kept as an unused cell)
    def add(v):
        return v * 2

    U.apply_update(Redefine("shop", None, {"shop.adder": add}))
    assert shop.adder(4) == 8
    U.revert_all()
    assert shop.adder(4) == 104

    # changing the kind of function
    def spin(n):
        yield n

    expect_luerror(lambda: U.apply_update(Redefine("shop", None, {"shop.spin": spin})), "generator")
    assert U.ls() == []
    assert_pristine()


@check
def stale_source_refused():
    time.sleep(0.01)
    with open(stale.__file__, "w") as fh:
        fh.write("def f(x):\n    return x + 2  # edited\n")
    expect_luerror(lambda: U.apply_update(Instrument("stale.f", {"func_before": print})), "edited", "stale.f")
    with open(stale.__file__, "w") as fh:
        fh.write("\n\ndef f(x):\n    return x + 1\n")  # same code, moved lines
    expect_luerror(lambda: U.apply_update(Instrument("stale.f", {"func_before": print})), "edited")
    assert stale.f(1) == 2


@check
def no_global_tracing():
    U.apply_update(Instrument("shop.*", {"func_before": lambda i, a: None, "func_after": lambda i, r, e: None}))
    assert sys.gettrace() is None and sys.getprofile() is None
    c = shop.Cart()
    assert c.total(1) == 5 and shop.spin(1) == 2 and list(shop.gen(2)) == [0, 1]
    U.revert_all()
    assert_pristine()


# ------------------------------------------------- call trees of coroutines
from lu_payloads.engine import Points  # noqa: E402
from lu_payloads.tools.calltree import CallTreeSession  # noqa: E402


def profiled(*patterns):
    """A FuncProfiler-like session on `patterns`: (session, update id)."""
    session = CallTreeSession()
    uid = U.apply_update(Instrument(list(patterns), Points().timer(session)))
    return session, uid


def tree_of(records):
    """{path: node} of snapshot records, paths as tuples of short names, all threads added up."""
    out = {}
    for record in records:
        paths = []
        for node in record["nodes"]:
            parent = node["parent"]
            path = (paths[parent] if parent >= 0 else ()) + (node["function"].split(".")[-1],)
            paths.append(path)
            mine = out.setdefault(path, {"hits": 0, "total_ns": 0, "wall_ns": 0, "open": 0, "open_ns": 0})
            for key in mine:
                mine[key] += node.get(key, 0)
    return out


def hook_errors(uid):
    return next(r for r in U.ls() if r["id"] == uid)["hook_errors"]


def ms(ns):
    return ns / 1e6


@check
def calltree_awaited_coroutines_sit_under_their_awaiter_with_running_and_wall_time():
    session, uid = profiled("atree.leaf", "atree.mid", "atree.handler", "atree.cpu")

    async def main():
        await asyncio.gather(*[atree.handler() for _ in range(3)])

    asyncio.run(main())
    tree = tree_of(session.snapshot())
    assert set(tree) == {
        ("handler",),
        ("handler", "mid"),
        ("handler", "mid", "cpu"),
        ("handler", "mid", "leaf"),
        ("handler", "mid", "leaf", "cpu"),
    }, sorted(tree)
    handler, mid, leaf = tree[("handler",)], tree[("handler", "mid")], tree[("handler", "mid", "leaf")]
    assert handler["hits"] == mid["hits"] == leaf["hits"] == 3
    # Running: the CPU loops (20 ms in leaf, 10 more in mid) and nothing of the sleeps or the other tasks.
    assert 60 <= ms(leaf["total_ns"]) < 60 + 25, leaf
    assert 90 <= ms(mid["total_ns"]) < 90 + 30, mid
    assert 90 <= ms(handler["total_ns"]) < 90 + 35, handler
    # Wall: from start to finish, the sleeps included (50 ms in leaf, 30 more in handler).
    assert ms(leaf["wall_ns"]) >= 3 * 70 and ms(mid["wall_ns"]) >= 3 * 80 and ms(handler["wall_ns"]) >= 3 * 110
    assert not session.running and hook_errors(uid) == 0
    assert session.threads[0].node is session.threads[0].root  # the thread's position is back at the top


@check
def calltree_exceptions_cancellation_generators_and_threads_keep_the_tree_straight():
    session, uid = profiled(
        "atree.fails",
        "atree.catches",
        "atree.stuck",
        "atree.awaits_stuck",
        "atree.gen",
        "atree.delegates",
        "atree.agen",
        "atree.consumes",
        "atree.cpu",
    )

    async def main():
        assert await atree.catches() == 3
        task = asyncio.ensure_future(atree.awaits_stuck())
        await asyncio.sleep(0.01)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        assert await atree.consumes() == [0, 1, 2]

    asyncio.run(main())
    assert list(atree.delegates()) == [0, 1, 2, "last"]
    closed = atree.gen(5)
    next(closed)
    closed.close()
    # A generator started in one thread and finished in another.
    crossing = atree.gen(4)
    next(crossing)
    worker = threading.Thread(target=lambda: list(crossing))
    worker.start()
    worker.join()
    tree = tree_of(session.snapshot())
    assert tree[("catches",)]["hits"] == 1 and tree[("catches", "fails")]["hits"] == 1, sorted(tree)
    assert 4 <= ms(tree[("catches",)]["total_ns"]) < 4 + 15, tree[("catches",)]
    assert ms(tree[("catches",)]["wall_ns"]) >= 14  # the 10 ms timeout is in the wall time only
    assert tree[("awaits_stuck",)]["hits"] == 1 and tree[("awaits_stuck", "stuck")]["hits"] == 1
    assert tree[("consumes",)]["hits"] == 1 and tree[("delegates", "gen")]["hits"] == 1
    gens = sum(node["hits"] for path, node in tree.items() if path[-1] == "gen")
    assert gens == 3, sorted(tree)
    for path, node in tree.items():
        if node["wall_ns"]:
            assert node["total_ns"] <= node["wall_ns"] + 1000, (path, node)
    assert not session.running and hook_errors(uid) == 0
    assert all(t.node is t.root for t in session.threads), [t.node[3] for t in session.threads]


@check
def calltree_async_with_and_async_for_suspend_the_call():
    session, uid = profiled("atree.streams", "atree.locked", "atree.other", "atree.cpu")

    async def main():
        lock = asyncio.Lock()
        await lock.acquire()  # held 30 ms: `locked` waits for it in its `async with`
        waiting = asyncio.ensure_future(atree.locked(lock))
        streaming = asyncio.ensure_future(atree.streams())
        for _ in range(3):
            await asyncio.sleep(0.01)
            await atree.other()  # runs while both wait: must sit at the top, not under them
        lock.release()
        await asyncio.gather(waiting, streaming)

    asyncio.run(main())
    tree = tree_of(session.snapshot())
    assert set(tree) == {
        ("locked",),
        ("locked", "cpu"),
        ("streams",),
        ("streams", "cpu"),
        ("other",),
        ("other", "cpu"),
    }, sorted(tree)
    assert tree[("other",)]["hits"] == 3 and tree[("streams", "cpu")]["hits"] == 3
    assert 5 <= ms(tree[("locked",)]["total_ns"]) < 5 + 10 <= ms(tree[("locked",)]["wall_ns"]), tree[("locked",)]
    assert 6 <= ms(tree[("streams",)]["total_ns"]) < 6 + 10, tree[("streams",)]
    assert ms(tree[("streams",)]["wall_ns"]) >= 60
    assert not session.running and hook_errors(uid) == 0


@check
def calltree_calls_not_finished_are_shown_with_their_time_so_far():
    session, uid = profiled("atree.blocked", "atree.stuck", "atree.awaits_stuck", "atree.cpu")
    event = threading.Event()
    worker = threading.Thread(target=atree.blocked, args=(event,))
    worker.start()
    loop = asyncio.new_event_loop()
    try:
        task = loop.create_task(atree.awaits_stuck())
        loop.run_until_complete(asyncio.sleep(0.05))
        tree = tree_of(session.snapshot())
        task.cancel()
        loop.run_until_complete(asyncio.wait([task]))
    finally:
        loop.close()
        event.set()
        worker.join()
    blocked = tree[("blocked",)]
    assert blocked["hits"] == 0 and blocked["open"] == 1 and ms(blocked["open_ns"]) >= 40, blocked
    outer, inner = tree[("awaits_stuck",)], tree[("awaits_stuck", "stuck")]
    assert outer["open"] == inner["open"] == 1 and outer["hits"] == 0, tree
    assert ms(outer["open_ns"]) < 10  # suspended all along: running almost nothing
    after = tree_of(session.snapshot())
    assert after[("blocked",)]["hits"] == 1 and not after[("blocked",)]["open"], after
    assert not session.running and hook_errors(uid) == 0


# ------------------------------------------------- the compiled timer beside the Python one
from lu_payloads.engine import accel  # noqa: E402

PLAIN = ["ctree.leaf", "ctree.fails", "ctree.mid", "ctree.fan", "ctree.top", "ctree.deep"]
PLAIN += ["ctree.kid%d" % i for i in range(20)]
FREE_THREADED = "t" in getattr(sys, "abiflags", "")


def timed(timer, *patterns):
    session = CallTreeSession(timer)
    uid = U.apply_update(Instrument(list(patterns), Points().timer(session)))
    return session, uid


def description(uid):
    return next(r for r in U.ls() if r["id"] == uid)["description"]


def workload():
    ctree.top(50)
    ctree.deep(300)
    ctree.in_threads(4, 20)


@check
def compiled_timer_gives_the_python_timers_trees():
    if FREE_THREADED:  # the compiled timer is for GIL builds: auto says so and times in Python
        session, uid = timed("auto", *PLAIN)
        assert session.c_timer is None and description(uid).endswith(", Python timer"), description(uid)
        assert "free-threaded" in session.in_use, session.in_use
        expect_luerror(lambda: timed("compiled", *PLAIN), "compiled timer", "free-threaded")
        return
    trees = {}
    for timer in ("compiled", "python"):
        session, uid = timed(timer, *PLAIN)
        assert (session.c_timer is not None) == (timer == "compiled"), description(uid)
        assert description(uid).endswith(", compiled timer" if timer == "compiled" else ", Python timer")
        assert session.in_use == ("compiled timer" if timer == "compiled" else "Python timer, as asked")
        workload()
        records = session.snapshot()
        trees[timer] = {path: node["hits"] for path, node in tree_of(records).items()}
        assert hook_errors(uid) == 0
        threads = sorted(r["thread"] for r in records)
        assert threads == ["MainThread", "worker-*"], threads  # ended threads pooled under one name
        if timer == "compiled":
            by_path = tree_of(records)
            top, mid = by_path[("top",)], by_path[("top", "mid")]
            assert 0 < mid["total_ns"] <= top["total_ns"], (top, mid)
            assert all(node["total_ns"] > 0 for node in by_path.values() if node["hits"]), by_path
            assert session.c_timer.counts()[0] == 1, session.c_timer.counts()  # the workers' trees were freed
        U.revert(uid)
    assert trees["compiled"] == trees["python"], (trees["compiled"], trees["python"])
    assert (
        trees["compiled"][("top",)] == 5
        and trees["compiled"][("top", "mid", "mid", "mid", "mid", "fails")] == 50 + 4 * 20
    )
    assert len([p for p in trees["compiled"] if p[:2] == ("top", "fan")]) == 21  # fan and its 20 kids
    assert max(len(p) for p in trees["compiled"]) == 301  # deep(300) and its 300 recursive calls


@check
def compiled_timer_shows_calls_not_finished_and_survives_a_revert_under_them():
    if FREE_THREADED:
        return
    session, uid = timed("compiled", "ctree.blocked", "ctree.leaf")
    event = threading.Event()
    worker = threading.Thread(target=ctree.blocked, args=(event,))
    worker.start()
    time.sleep(0.05)
    tree = tree_of(session.snapshot())
    assert tree[("blocked",)]["open"] == 1 and ms(tree[("blocked",)]["open_ns"]) >= 40, tree
    U.revert(uid)  # the call goes on in the woven code, which still calls the timer
    event.set()
    worker.join()
    tree = tree_of(session.snapshot())
    assert tree[("blocked",)]["hits"] == 1 and not tree[("blocked",)].get("open"), tree
    assert session.c_timer.leave(object()) is None  # never raises, whatever it is given


@check
def compiled_timer_is_chosen_only_where_it_can_time_every_call():
    session, uid = timed("auto", "ctree.leaf", "ctree.numbers")
    assert session.c_timer is None and "generators and coroutines (numbers)" in session.in_use, session.in_use
    U.revert(uid)
    expect_luerror(lambda: timed("compiled", "ctree.leaf", "ctree.numbers"), "generators and coroutines")
    assert_pristine()
    saved = accel._loaded
    accel._loaded = accel.Loaded(None, "no compiled timer was staged")
    try:
        session, uid = timed("auto", "ctree.leaf")
        assert session.c_timer is None and session.in_use == "Python timer: no compiled timer was staged"
        assert ctree.leaf(1) == 2 and tree_of(session.snapshot())[("leaf",)]["hits"] == 1
        U.revert(uid)
        expect_luerror(lambda: timed("compiled", "ctree.leaf"), "no compiled timer was staged")
    finally:
        accel._loaded = saved
    expect_luerror(lambda: CallTreeSession("fast"), "auto, compiled, python")


@check
def compiled_timer_is_freed_with_its_session():
    if FREE_THREADED:
        return
    import gc

    def timers():
        return [o for o in gc.get_objects() if type(o).__name__ == "CallTimer" and "_accel" in type(o).__module__]

    gc.collect()
    before = len(timers())
    session, uid = timed("compiled", *PLAIN)
    workload()
    session.snapshot()
    U.revert(uid)
    del session
    gc.collect()
    assert len(timers()) == before, (before, len(timers()))


from lu_payloads.tools.lineprofiler import LineSession  # noqa: E402

LOOPED = [number for number, text in enumerate(CTREE.splitlines(), 1) if "# line " in text]


def lines_of(records):
    """{line: [hits, total_ns]}, all threads added up."""
    out = {}
    for record in records:
        for row in record["lines"]:
            mine = out.setdefault(row["line"], [0, 0])
            mine[0] += row["hits"]
            mine[1] += row["total_ns"]
    return out


@check
def compiled_line_timer_gives_the_python_timers_figures():
    if FREE_THREADED:
        session = LineSession("auto")
        assert session.c_timer is None and "free-threaded" in session.in_use, session.in_use
        expect_luerror(lambda: LineSession("compiled"), "compiled timer", "free-threaded")
        return
    figures = {}
    for timer in ("compiled", "python"):
        session = LineSession(timer)
        assert (session.c_timer is not None) == (timer == "compiled"), session.in_use
        uid = U.apply_update(Instrument("ctree.looped", session.points(LOOPED)))
        session.session = uid
        ctree.looped(300)
        ctree.lines_in_threads(3, 200)
        records = session.snapshot()
        assert sorted(r["thread"] for r in records) == ["MainThread", "liner-*"], [r["thread"] for r in records]
        figures[timer] = lines_of(records)
        assert hook_errors(uid) == 0
        if timer == "compiled":
            assert session.c_timer.counts() == (1, 3), session.c_timer.counts()  # the liners' tables were freed
            assert all(total > 0 for _hits, total in figures[timer].values()), figures[timer]
        U.revert(uid)
    hits = {timer: {line: row[0] for line, row in rows.items()} for timer, rows in figures.items()}
    assert hits["compiled"] == hits["python"], hits
    b, c, d = (hits["compiled"][line] for line in LOOPED)
    assert b == c == 300 + 3 * 200 and d == 200 + 3 * 133, hits  # `continue` skips D on every third i


@check
def compiled_line_timer_is_chosen_unless_it_cannot_be():
    saved = accel._loaded
    accel._loaded = accel.Loaded(None, "no compiled timer was staged")
    try:
        session = LineSession("auto")
        assert session.c_timer is None and session.in_use == "Python timer: no compiled timer was staged"
        expect_luerror(lambda: LineSession("compiled"), "no compiled timer was staged")
    finally:
        accel._loaded = saved
    assert LineSession("python").in_use == "Python timer, as asked"
    if not FREE_THREADED:
        session = LineSession("auto")
        assert session.c_timer is not None and session.in_use == "compiled timer"
        assert session.c_timer.after(object()) is None  # never raises, whatever it is given
        expect_type_error = session.c_timer.before
        try:
            expect_type_error([1])  # a key that is not (info, line) is refused, not kept
        except TypeError:
            pass
        else:
            raise AssertionError("a bad key was taken")


print(json.dumps(results))
