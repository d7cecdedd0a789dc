"""The image library: read, list, edit, count uses, delete, and signed GETs for display.

``bp`` carries the feature's routes (:mod:`broker.images.views`, under ``/images``); the use
cases are in :mod:`broker.images.service` and, for signed GETs, :mod:`broker.images.downloads`.
"""

from flask import Blueprint

bp = Blueprint("images", __name__, url_prefix="/images")

from broker.images import views  # noqa: E402, F401  (it adds the routes to bp)
