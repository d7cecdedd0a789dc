"""Sharing: public links. A public image's ``public_url`` needs no token and redirects to a
signed GET of the image, so it can sit in an ``<img src>`` on any page, a mail or another site.

``bp`` carries the link route (:mod:`broker.sharing.views`, ``GET /p/<token>``); following a
link is :mod:`broker.sharing.service`. Who may see an image is :mod:`broker.domain`'s rule,
which the library and every signing form apply.
"""

from flask import Blueprint

from broker.domain import PUBLIC_LINK_PREFIX

bp = Blueprint("sharing", __name__, url_prefix=PUBLIC_LINK_PREFIX)

from broker.sharing import views  # noqa: E402, F401  (it adds the route to bp)
