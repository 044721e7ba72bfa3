"""An asyncio service with known work, and a thread stuck in a C call, for checking profiles against.

Every 10 ms the loop starts handler(): it awaits mid(), which awaits leaf()
(20 ms of CPU, then a 50 ms sleep) and then runs 10 ms of CPU; handler then
sleeps 30 ms. So per call: leaf runs 20 ms in 70 ms, mid runs 30 ms in 80 ms,
handler runs 30 ms in 110 ms (more while the loop is busy with other handlers).
A thread calls stuck() over and over, a one-second sleep in C, so a profile
shows finished calls of it and one that has not finished.
"""

import asyncio
import threading
import time


def cpu(ms: float) -> None:
    end = time.perf_counter() + ms / 1000.0
    while time.perf_counter() < end:
        pass


async def leaf() -> int:
    cpu(20)
    await asyncio.sleep(0.05)
    return 1


async def mid() -> int:
    await leaf()
    cpu(10)
    return 2


async def handler() -> None:
    await mid()
    await asyncio.sleep(0.03)


def stuck() -> None:
    time.sleep(1.0)


def stuck_forever() -> None:
    while True:
        stuck()


async def serve() -> None:
    print("ready", flush=True)
    running = set()
    while True:
        task = asyncio.ensure_future(handler())
        running.add(task)
        task.add_done_callback(running.discard)
        await asyncio.sleep(0.1)


threading.Thread(target=stuck_forever, name="stuck", daemon=True).start()
asyncio.run(serve())
