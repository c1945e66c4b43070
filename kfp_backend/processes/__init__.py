"""`kfp-backend serve --workers N`: the API under gunicorn in N web worker processes, the executor and the
scheduler each in a process of its own, all supervised by the `serve` process (supervisor.py, web.py)."""
