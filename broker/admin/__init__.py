"""The admin UI: a static single-page app at ``/admin/`` over the same API every client uses.

``bp`` carries its route and the headers of every static file (:mod:`broker.admin.views`); the
page, scripts and styles are files under ``broker/static/admin/``.
"""

from flask import Blueprint

bp = Blueprint("admin", __name__, url_prefix="/admin")

from broker.admin import views  # noqa: E402, F401  (it adds the route and the headers to bp)
