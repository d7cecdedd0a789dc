"""``flask --app wsgi worker`` and ``flask --app wsgi worker --once``: the variant worker.

The feature's blueprint lives here rather than in the package's ``__init__``: the render child
imports :mod:`broker.variants.render`, and the package itself must stay free of Flask for it.
"""

from __future__ import annotations

import json
from dataclasses import asdict

import click
from flask import Blueprint

from broker.extension import current_broker
from broker.variants.worker import OnceUnavailable, Worker

# cli_group=None: the command is top-level (``flask --app wsgi worker``).
bp = Blueprint("variants", __name__, cli_group=None)


@bp.cli.command("worker")
@click.option(
    "--once",
    is_flag=True,
    help="Make what is due now (after catching up on images without variants), then exit 0.",
)
def worker_command(once: bool) -> None:
    """Make image variants until SIGTERM or SIGINT (the current job finishes; a second signal
    puts it back at once), or with --once until nothing is due."""
    broker = current_broker()
    if not broker.settings.variants:
        click.echo("variants are off (BROKER_VARIANTS is empty): nothing to do", err=True)
        return
    try:
        tally = Worker(broker, once=once).run()
    except OnceUnavailable as e:
        # Exit 1: nothing is lost (the jobs stay queued), the next run picks them up.
        raise click.ClickException(f"stopped early, work left queued: {e}") from e
    if once:
        summary = asdict(tally)
        summary.pop("outcomes")
        click.echo(json.dumps(summary))
