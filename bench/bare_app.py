"""The ceiling of the HTTP benchmarks: a bare Flask app answering a small JSON object.

``make bench`` runs it under the same gunicorn as the broker (``bench.bare_app:app``, same
workers, worker class and ``gunicorn.conf.py``) in the same run, so every endpoint's requests/s
can be read as a share of what Flask itself can answer on this machine at that moment: no
hooks, no extensions, no logs, no metrics, one ``jsonify``.
"""

from __future__ import annotations

from flask import Flask, Response, jsonify

app = Flask(__name__)

PATH = "/bare"


@app.get(PATH)
def bare() -> Response:
    """A small JSON object, as ``/healthz`` answers."""
    return jsonify(status="ok")
