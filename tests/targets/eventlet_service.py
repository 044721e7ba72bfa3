"""An eventlet-patched WSGI service (eventlet.wsgi); prints "ready PORT"."""
import warnings

warnings.simplefilter("ignore")
import eventlet

eventlet.monkey_patch()
import json

from eventlet import wsgi


def price(n):
    return round(n * 1.1, 2)


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({"price": price(3)}).encode()]


sock = eventlet.listen(("127.0.0.1", 0))
print("ready", sock.getsockname()[1], flush=True)
wsgi.server(sock, app, log_output=False)
