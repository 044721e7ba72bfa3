"""A celery app on kombu's filesystem transport (no broker server), with one task that reports views.body().

TREEAPP_BROKER_DIR is the broker's directory; there is no result backend, so ping() appends
"<worker pid> <body>" to the file named by TREEAPP_RESULTS for the test to read.
Run: python -m celery -A treeapp.tasks worker --pool prefork --concurrency 2
"""

import os

from celery import Celery

from treeapp import views

_broker = os.environ.get("TREEAPP_BROKER_DIR") or "/tmp/treeapp-broker"
_folders = {name: os.path.join(_broker, name) for name in ("queue", "processed", "control")}
for _folder in _folders.values():
    os.makedirs(_folder, exist_ok=True)

app = Celery("treeapp")
app.conf.update(
    broker_url="filesystem://",
    broker_transport_options={
        "data_folder_in": _folders["queue"],
        # A sender may write elsewhere and move each message into the queue whole: kombu creates a message
        # file, then locks and fills it, and a worker that opens it in between reads it empty and dies.
        "data_folder_out": os.environ.get("TREEAPP_OUTBOX") or _folders["queue"],
        "processed_folder": _folders["processed"],
        "control_folder": _folders["control"],  # else kombu writes it into the working directory
        "store_processed": True,
        "polling_interval": 0.1,  # the default second would make every test wait
    },
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
)


@app.task
def ping():
    body = views.body().decode()
    results = os.environ.get("TREEAPP_RESULTS")
    if results:
        with open(results, "a") as out:
            out.write("%d %s\n" % (os.getpid(), body))
    return body
