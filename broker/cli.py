"""``flask --app wsgi …`` commands for development and operations."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import click
from flask import Flask, current_app

from broker import service
from broker.auth import create_token
from broker.service import Broker

# The bucket CORS template shipped at the repository root; its origins are replaced by the
# configured ones when applied.
DEFAULT_CORS_FILE = Path(__file__).resolve().parent.parent / "s3-cors.json"


def _broker() -> Broker:
    broker: Broker = current_app.extensions["broker"]
    return broker


def bucket_cors_rules(template: dict[str, Any], origins: tuple[str, ...]) -> list[dict[str, Any]]:
    """The template's CORS rules with ``AllowedOrigins`` set to the configured origins."""
    rules = template.get("CORSRules")
    if not isinstance(rules, list) or not rules:
        raise click.ClickException("the CORS file must hold a non-empty CORSRules list")
    return [{**rule, "AllowedOrigins": list(origins)} for rule in rules]


def load_cors_template(path: Path = DEFAULT_CORS_FILE) -> dict[str, Any]:
    """Read the bucket CORS template (``s3-cors.json``)."""
    template: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return template


def apply_bucket_cors(broker: Broker, path: Path = DEFAULT_CORS_FILE) -> list[dict[str, Any]]:
    """Apply ``s3-cors.json`` with the configured origins to the bucket; return the rules."""
    rules = bucket_cors_rules(load_cors_template(path), broker.settings.cors_origins)
    broker.bucket.apply_cors(rules)
    return rules


def register(app: Flask) -> None:
    """Add the broker's commands to ``app.cli``."""

    @app.cli.command("create-token")
    @click.argument("user")
    @click.option("--admin", is_flag=True, help="Give the token the admin role.")
    @click.option(
        "--ttl",
        default=3600,
        show_default=True,
        type=click.IntRange(min=1),
        help="Lifetime in seconds.",
    )
    def create_token_command(user: str, admin: bool, ttl: int) -> None:
        """Print a signed JWT for USER (needs the secret, or the private key with RS256)."""
        try:
            token = create_token(user, admin=admin, ttl=timedelta(seconds=ttl))
        except (RuntimeError, TypeError, ValueError) as e:
            raise click.ClickException(
                "cannot sign tokens with this configuration: set BROKER_JWT_SECRET, or "
                "BROKER_JWT_PRIVATE_KEY alongside BROKER_JWT_PUBLIC_KEY"
            ) from e
        click.echo(token)

    @app.cli.command("ensure-indexes")
    def ensure_indexes_command() -> None:
        """Create the MongoDB indexes (idempotent)."""
        for name in _broker().db.ensure_indexes():
            click.echo(name)

    @app.cli.command("apply-cors")
    @click.option(
        "--file",
        "path",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        default=DEFAULT_CORS_FILE,
        show_default=True,
    )
    def apply_cors_command(path: Path) -> None:
        """Apply the bucket CORS rules with the configured origins (BROKER_CORS_ORIGINS)."""
        click.echo(json.dumps({"CORSRules": apply_bucket_cors(_broker(), path)}, indent=2))

    @app.cli.command("sweep")
    def sweep_command() -> None:
        """Delete abandoned uploads and finish interrupted deletes (cron-safe, multi-host-safe)."""
        report = service.sweep(_broker())
        click.echo(
            json.dumps(
                {
                    "expired_uploads": report.expired_uploads,
                    "finished_deletes": report.finished_deletes,
                }
            )
        )
