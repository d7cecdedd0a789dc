"""``flask --app wsgi sweep``: the cleanup cron runs."""

from __future__ import annotations

import json
from dataclasses import asdict

import click

from broker.extension import current_broker
from broker.uploads import bp
from broker.uploads.sweep import sweep


@bp.cli.command("sweep")
def sweep_command() -> None:
    """Delete abandoned uploads, clean the keys of ended ones, finish interrupted deletes,
    remove variants whose image is gone (cron-safe, multi-host-safe)."""
    broker = current_broker()
    broker.db.indexes.ensure()
    report = sweep(broker)
    click.echo(json.dumps(asdict(report)))
    if report.failed:
        # Cron sees the failure; the items stay claimed and a later sweep retries them.
        raise click.ClickException(f"{report.failed} item(s) could not be swept, retry later")
