"""What every server answers: body() (the function a patch redefines) and the pid of the worker that answered.

Under ASGI, /slow answers through two coroutines with known work: fetch_part
runs 3 ms of CPU and awaits a 20 ms sleep, slow_page awaits it and runs 2 ms
more, so a profile can be checked against them.
"""

import asyncio
import os
import time


def body() -> bytes:
    return b"original"


def _answer() -> bytes:
    return body() + b" " + str(os.getpid()).encode()


def wsgi(environ, start_response):
    data = _answer()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))])
    return [data]


def spin(ms: float) -> None:
    end = time.perf_counter() + ms / 1000.0
    while time.perf_counter() < end:
        pass


async def fetch_part() -> bytes:
    spin(3)
    await asyncio.sleep(0.02)
    return body()


async def slow_page() -> bytes:
    part = await fetch_part()
    spin(2)
    return part + b" " + str(os.getpid()).encode()


async def asgi(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    data = await slow_page() if scope.get("path") == "/slow" else _answer()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(data)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": data})
