"""Operations: health, readiness, metrics, the OpenAPI document, the client limits, and the
operator's commands (bucket set-up, indexes, quota recount, tokens).

``bp`` carries the feature's routes (:mod:`broker.ops.views`) and its commands
(:mod:`broker.ops.cli`, top-level: ``flask --app wsgi setup-bucket``).
"""

from flask import Blueprint

# cli_group=None: the commands are top-level (``flask --app wsgi setup-bucket``).
bp = Blueprint("ops", __name__, cli_group=None)

from broker.ops import cli, views  # noqa: E402, F401  (they add routes and commands to bp)
