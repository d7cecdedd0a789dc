"""botocore as the yardstick for the fast signer: a client set up like the broker's, frozen time."""

from __future__ import annotations

import contextlib
import datetime as _dt
from collections.abc import Iterator
from typing import Any
from unittest import mock

import boto3
import botocore.auth
import botocore.config


def make_s3_client(
    endpoint_url: str,
    region: str,
    addressing: str = "path",
    *,
    session: boto3.Session | None = None,
    **client_kwargs: Any,
) -> Any:
    """An S3 client configured exactly like the broker's reference path."""
    config = botocore.config.Config(signature_version="s3v4", s3={"addressing_style": addressing})
    factory = session.client if session is not None else boto3.client
    return factory(
        "s3", endpoint_url=endpoint_url, region_name=region, config=config, **client_kwargs
    )


@contextlib.contextmanager
def botocore_frozen_time(now: _dt.datetime) -> Iterator[None]:
    """Make botocore's SigV4 signers see ``now`` (naive = UTC) as the current time.

    ``botocore.auth`` does ``from botocore.compat import get_current_datetime``, so that name
    inside ``botocore.auth`` is what must be patched (patching ``botocore.auth.datetime`` has
    no effect on SigV4 timestamps).
    """
    if now.tzinfo is not None:
        now = now.astimezone(_dt.UTC).replace(tzinfo=None)
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=now):
        yield
