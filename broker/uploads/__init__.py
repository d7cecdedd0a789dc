"""Uploads: presign a PUT straight into the bucket, confirm what was PUT, sweep what was not.

``bp`` carries the feature's routes (:mod:`broker.uploads.views`, under ``/images``) and its
command (:mod:`broker.uploads.cli`, ``flask sweep``); the use cases are in
:mod:`broker.uploads.service` and :mod:`broker.uploads.sweep`.
"""

from flask import Blueprint

# cli_group=None: the commands are top-level (``flask --app wsgi sweep``).
bp = Blueprint("uploads", __name__, url_prefix="/images", cli_group=None)

from broker.uploads import cli, views  # noqa: E402, F401  (they add routes and commands to bp)
