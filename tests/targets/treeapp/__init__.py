"""A tiny app served by real multi-process servers (gunicorn, uvicorn, celery, a fork pool) for the --tree tests.

Every server imports the same views.body(), so one patch of it shows in the answers of every worker.
"""
