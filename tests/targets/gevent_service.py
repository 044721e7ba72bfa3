"""A gevent-patched WSGI service (gevent.pywsgi); prints "ready PORT"."""
from gevent import monkey

monkey.patch_all()
import json
import threading

from gevent.pywsgi import WSGIServer


def price(n):
    return round(n * 1.1, 2)


def app(environ, start_response):
    body = json.dumps({"price": price(3), "thread": threading.current_thread().name}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


server = WSGIServer(("127.0.0.1", 0), app, log=None)
server.start()
print("ready", server.server_port, flush=True)
server.serve_forever()
