"""A service for lu watch tests: imports watch_shop from the directory in argv[1].

A worker thread calls watch_shop.tick() every 5 ms (so edits are seen by a
running loop); an asyncio loop in another thread awaits inside
watch_shop.serve(); the main thread sleeps.  Objects taken before any edit
(a bound method, an imported function, an instance) are kept in watch_shop._early.
"""
import asyncio
import sys
import threading
import time

sys.path.insert(0, sys.argv[1])
import watch_shop
from watch_shop import price

cart = watch_shop.Cart([1, 2, 3])
watch_shop._early = {"price": price, "total": cart.total, "cart": cart, "callbacks": [watch_shop.on_event]}


def worker():
    while True:
        try:
            watch_shop._early["last_tick"] = watch_shop.tick()
        except Exception:
            pass
        time.sleep(0.005)


def loop_thread():
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    watch_shop._loop = loop
    loop.run_forever()


def begin_serve():
    """Start watch_shop.serve(gate) on the loop; it awaits until release()."""
    async def run():
        gate = watch_shop._early["gate"] = asyncio.Event()
        return await watch_shop.serve(gate)
    watch_shop._early["serve"] = asyncio.run_coroutine_threadsafe(run(), watch_shop._loop)


def release():
    watch_shop._loop.call_soon_threadsafe(watch_shop._early["gate"].set)
    return watch_shop._early["serve"].result(10)


def serve_again():
    async def run():
        gate = asyncio.Event()
        gate.set()
        return await watch_shop.serve(gate)
    return asyncio.run_coroutine_threadsafe(run(), watch_shop._loop).result(10)


watch_shop._service = sys.modules[__name__]
threading.Thread(target=worker, daemon=True).start()
threading.Thread(target=loop_thread, daemon=True).start()
while not hasattr(watch_shop, "_loop"):
    time.sleep(0.01)
print("ready", flush=True)
time.sleep(3600)
