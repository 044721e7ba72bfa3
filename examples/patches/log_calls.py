"""Log every call of the shop's pricing functions, with arguments and results.

    lu patch PID examples/patches/log_calls.py     # lines appear on the service's stderr
    lu ls PID                                      # the update, and how many hook errors
    lu revert PID ID

Hooks run inside the service; one that raised would be counted (lu ls), never
passed on to the request.
"""
import sys
import threading

from lu_payloads import Instrument, UpdateManager


def before(info, args):
    args.pop("self", None)
    print("[lu] %s -> %s(%s)" % (threading.current_thread().name, info.name,
                                 ", ".join("%s=%r" % kv for kv in args.items())), file=sys.stderr, flush=True)


def after(info, result, exc):
    outcome = "raised %r" % exc if exc is not None else "returned %r" % (result,)
    print("[lu] %s <- %s %s" % (threading.current_thread().name, info.name, outcome), file=sys.stderr, flush=True)


UpdateManager.apply_update(Instrument(["shoplib.price", "shoplib.Cart.total"],
                                      {"func_before": before, "func_after": after},
                                      description="log calls of price and Cart.total"))
