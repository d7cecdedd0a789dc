"""``flask --app wsgi …`` commands for development and operations."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path

import click
from flask import Flask

from broker.auth import create_token
from broker.bucket_policy import (
    DEFAULT_CORS_FILE,
    PolicyError,
    apply_bucket_cors,
    apply_bucket_lifecycle,
    setup_bucket,
)
from broker.extension import current_broker
from broker.uploads import service


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
        max_ttl = current_broker().settings.jwt_max_ttl
        if ttl > max_ttl:
            raise click.ClickException(
                f"--ttl {ttl} exceeds BROKER_JWT_MAX_TTL ({max_ttl}): the broker would refuse it"
            )
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
        for name in current_broker().db.ensure_indexes():
            click.echo(name)

    cors_file = click.option(
        "--file",
        "path",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        default=DEFAULT_CORS_FILE,
        show_default=True,
        help="The bucket CORS template.",
    )

    @app.cli.command("setup-bucket")
    @cors_file
    @click.option(
        "--without-copy-policy",
        is_flag=True,
        help="Leave out the bucket policy (stores without bucket policies, e.g. Cloudflare R2).",
    )
    def setup_bucket_command(path: Path, without_copy_policy: bool) -> None:
        """Apply everything the bucket must hold: CORS, lifecycle, copy-refusing policy, no
        public access (idempotent; prints what it changed)."""
        try:
            steps = setup_bucket(current_broker(), path, copy_policy=not without_copy_policy)
        except PolicyError as e:
            raise click.ClickException(str(e)) from e
        for step in steps:
            click.echo(f"{step.name}: {step.outcome}")
        failed = [step.name for step in steps if step.outcome.startswith("failed")]
        if failed:
            raise click.ClickException(f"could not apply: {', '.join(failed)} (see the log)")

    # The single-purpose commands setup-bucket runs, kept for scripts that call them.
    @app.cli.command("apply-cors")
    @cors_file
    def apply_cors_command(path: Path) -> None:
        """Apply the bucket CORS rules with the configured origins (BROKER_CORS_ORIGINS)."""
        try:
            rules = apply_bucket_cors(current_broker(), path)
        except PolicyError as e:
            raise click.ClickException(str(e)) from e
        click.echo(json.dumps({"CORSRules": rules}, indent=2))

    @app.cli.command("apply-lifecycle")
    def apply_lifecycle_command() -> None:
        """Expire unconfirmed objects and abandoned multipart uploads (BROKER_*_DAYS)."""
        click.echo(json.dumps({"Rules": apply_bucket_lifecycle(current_broker())}, indent=2))

    @app.cli.command("block-public-access")
    def block_public_access_command() -> None:
        """Make the bucket refuse public ACLs and policies."""
        current_broker().bucket.block_public_access()
        click.echo("public access blocked")

    @app.cli.command("recount-quotas")
    def recount_quotas_command() -> None:
        """Rebuild every user's quota usage from the images and pending uploads (after a crash
        or restore)."""
        broker = current_broker()
        owners = broker.db.quotas.recount(broker.db.images.collection, broker.db.uploads.collection)
        click.echo(f"{owners} owner(s) recounted")

    @app.cli.command("sweep")
    def sweep_command() -> None:
        """Delete abandoned uploads, clean the keys of ended ones, finish interrupted deletes
        (cron-safe, multi-host-safe)."""
        broker = current_broker()
        broker.db.indexes.ensure()
        report = service.sweep(broker)
        click.echo(json.dumps(asdict(report)))
        if report.failed:
            # Cron sees the failure; the items stay claimed and a later sweep retries them.
            raise click.ClickException(f"{report.failed} item(s) could not be swept, retry later")
