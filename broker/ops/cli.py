"""The operator's commands: ``flask --app wsgi setup-bucket``, ``ensure-indexes``,
``recount-quotas``, ``create-token`` and the single-purpose bucket commands."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import click

from broker.auth import READER_ROLE, create_token
from broker.bucket_policy import (
    DEFAULT_CORS_FILE,
    PolicyError,
    apply_bucket_cors,
    apply_bucket_lifecycle,
    setup_bucket,
)
from broker.extension import current_broker
from broker.ops import bp


@bp.cli.command("create-token")
@click.argument("user")
@click.option("--admin", is_flag=True, help="Give the token the admin role.")
@click.option(
    "--reader",
    is_flag=True,
    help="Give the token the reader role (sees and signs every image, changes nothing).",
)
@click.option(
    "--ttl",
    default=3600,
    show_default=True,
    type=click.IntRange(min=1),
    help="Lifetime in seconds.",
)
def create_token_command(user: str, admin: bool, reader: bool, ttl: int) -> None:
    """Print a signed JWT for USER (needs the secret, or the private key with RS256)."""
    max_ttl = current_broker().settings.jwt_max_ttl
    if ttl > max_ttl:
        raise click.ClickException(
            f"--ttl {ttl} exceeds BROKER_JWT_MAX_TTL ({max_ttl}): the broker would refuse it"
        )
    try:
        roles = [READER_ROLE] if reader else []
        token = create_token(user, admin=admin, roles=roles, ttl=timedelta(seconds=ttl))
    except (RuntimeError, TypeError, ValueError) as e:
        raise click.ClickException(
            "cannot sign tokens with this configuration: set BROKER_JWT_SECRET, or "
            "BROKER_JWT_PRIVATE_KEY alongside BROKER_JWT_PUBLIC_KEY"
        ) from e
    click.echo(token)


@bp.cli.command("ensure-indexes")
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


@bp.cli.command("setup-bucket")
@cors_file
@click.option(
    "--without-copy-policy",
    is_flag=True,
    help="Leave out the bucket policy (stores without bucket policies, e.g. Cloudflare R2).",
)
def setup_bucket_command(path: Path, without_copy_policy: bool) -> None:
    """Apply everything the bucket must hold: CORS, lifecycle, copy-refusing policy, no
    public access (idempotent; prints what it changed)."""
    broker = current_broker()
    try:
        steps = setup_bucket(
            broker.bucket, broker.settings, path, copy_policy=not without_copy_policy
        )
    except PolicyError as e:
        raise click.ClickException(str(e)) from e
    for step in steps:
        click.echo(f"{step.name}: {step.outcome}")
    failed = [step.name for step in steps if step.outcome.startswith("failed")]
    if failed:
        raise click.ClickException(f"could not apply: {', '.join(failed)} (see the log)")


# The single-purpose commands setup-bucket runs, kept for scripts that call them.
@bp.cli.command("apply-cors")
@cors_file
def apply_cors_command(path: Path) -> None:
    """Apply the bucket CORS rules with the configured origins (BROKER_CORS_ORIGINS)."""
    broker = current_broker()
    try:
        rules = apply_bucket_cors(broker.bucket, broker.settings, path)
    except PolicyError as e:
        raise click.ClickException(str(e)) from e
    click.echo(json.dumps({"CORSRules": rules}, indent=2))


@bp.cli.command("apply-lifecycle")
def apply_lifecycle_command() -> None:
    """Expire unconfirmed objects and abandoned multipart uploads (BROKER_*_DAYS)."""
    broker = current_broker()
    rules = apply_bucket_lifecycle(broker.bucket, broker.settings)
    click.echo(json.dumps({"Rules": rules}, indent=2))


@bp.cli.command("block-public-access")
def block_public_access_command() -> None:
    """Make the bucket refuse public ACLs and policies."""
    current_broker().bucket.block_public_access()
    click.echo("public access blocked")


@bp.cli.command("recount-quotas")
def recount_quotas_command() -> None:
    """Rebuild every user's quota usage from the images and pending uploads (after a crash
    or restore)."""
    owners = current_broker().db.recount_quotas()
    click.echo(f"{owners} owner(s) recounted")
