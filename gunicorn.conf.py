"""gunicorn settings read from the working directory (``gunicorn wsgi:app``); flags override.

gunicorn refuses an oversized request line or header field itself, before the app sees it, with
an HTML page (414, 431). Its limits are set above the app's (``broker/http/request_head.py``:
4094-byte request line, 8190-byte fields, 100 fields), so the app refuses those requests with
the contract's JSON envelope (413 ``too_large``). A request line over 8190 bytes stays gunicorn's
to refuse (its ceiling): put a reverse proxy in front that answers it (README, "Production").
"""

# gunicorn's maximum; 0 would mean "unlimited" and let one request line take a megabyte.
limit_request_line = 8190
# Twice the app's limits: enough for the app to see and refuse, bounded memory per request
# (at most fields x size, about 3 MiB).
limit_request_field_size = 16380
limit_request_fields = 200
