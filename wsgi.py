"""WSGI entry point: ``gunicorn wsgi:app`` (configured from environment variables only)."""

from broker import create_app

app = create_app()
