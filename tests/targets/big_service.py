"""A threaded HTTP service that has loaded part of the standard library: thousands of functions to profile.

Prints "ready PORT PATTERN...", the patterns (`asyncio.**`, ...) that name
what it loaded. GET / answers "ok PID"; GET /gap answers "MS PID", the
longest gap in milliseconds between two ticks of a heartbeat thread that
ticks every millisecond, since the previous /gap (so a test reads the longest
stall the program saw while lu worked on it).
"""
import http.server
import importlib
import os
import socketserver
import threading
import time

MODULES = [  # about 3,000 functions and methods in all
    "asyncio",
    "email.generator",
    "email.headerregistry",
    "email.mime.multipart",
    "email.mime.text",
    "email.parser",
    "email.policy",
    "http.client",
    "http.cookiejar",
    "http.cookies",
    "http.server",
    "logging.config",
    "logging.handlers",
    "unittest",
    "unittest.mock",
    "urllib.parse",
    "urllib.request",
    "xml.dom.minidom",
    "xml.etree.ElementTree",
    "xml.sax.saxutils",
]
for name in MODULES:
    importlib.import_module(name)

longest = 0.0
lock = threading.Lock()


def heartbeat():
    global longest
    last = time.monotonic()
    while True:
        time.sleep(0.001)
        now = time.monotonic()
        with lock:
            longest = max(longest, now - last)
        last = now


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        global longest
        if self.path == "/gap":
            with lock:
                gap, longest = longest, 0.0
            body = b"%.1f %d" % (gap * 1000.0, os.getpid())
        else:
            body = b"ok %d" % os.getpid()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


threading.Thread(target=heartbeat, name="heartbeat", daemon=True).start()
server = Server(("127.0.0.1", 0), Handler)
patterns = sorted({name.split(".")[0] + ".**" for name in MODULES})
print("ready %d %s" % (server.server_address[1], " ".join(patterns)), flush=True)
server.serve_forever()
