"""A service for the tools' tests: threaded HTTP, an asyncio loop, a recursive function, old instances."""
import asyncio
import http.server
import json
import socketserver
import threading


class Cart:
    def __init__(self, n):
        self.items = list(range(n))

    def total(self):
        s = 0
        for x in self.items:
            s += price(x)
        return s


def price(x):
    return x * 2


def fib(n):
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)


def shout(word):
    if word == "boom":
        raise ValueError("no boom")
    return word.upper()


class Loud:
    def __repr__(self):
        raise RuntimeError("repr is broken")


CARTS = [Cart(5) for _ in range(3)]  # instances created before any profile


async def fetch(i):
    await asyncio.sleep(0.004)
    return i * 2


async def handle_batch():
    results = await asyncio.gather(*(fetch(i) for i in range(3)))
    return sum(results)


def async_loop():
    async def main():
        while True:
            await handle_batch()
            await asyncio.sleep(0.002)

    asyncio.run(main())


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/boom":
            try:
                shout("boom")
            except ValueError:
                pass
        body = json.dumps({"total": CARTS[0].total(), "fib": fib(8), "word": shout("hi"),
                           "loud": str(type(Loud()))}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def main():
    threading.Thread(target=async_loop, name="asyncio-loop", daemon=True).start()
    server = Server(("127.0.0.1", 0), Handler)
    print("ready %d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
