"""What a render gives back: the encoded variants, or the reason there are none.

Pure (no libvips): the worker, the sandbox's parent side and the API's use cases speak of
renders without loading the image library; only the render child imports :mod:`.render`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

# An original as the renderer takes it: its bytes, or the path of a file holding them.
Source = bytes | str | os.PathLike[str]


class RenderError(Exception):
    """An image whose variants cannot be made: ``code`` says why, ``permanent`` whether to retry.

    Codes from the renderer and its sandbox: ``unsupported_format``, ``too_many_pixels``,
    ``undecodable`` (corrupt, truncated or lying), ``memory_limit``, ``time_limit``, ``crashed``
    (permanent), and ``internal`` or ``unavailable`` (transient: the worker retries them with
    backoff). From the worker: ``original_missing``, ``original_changed``, ``too_large`` and
    ``gave_up`` (transient failures went on past ``BROKER_VARIANT_MAX_ATTEMPTS``).
    """

    def __init__(self, code: str, message: str, *, permanent: bool = True) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.permanent = permanent

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle with the keyword argument, so the error crosses the sandbox's pipe intact."""
        return (_rebuild_error, (self.code, self.message, self.permanent))


def _rebuild_error(code: str, message: str, permanent: bool) -> RenderError:
    """Rebuild a :class:`RenderError` on the parent's side of the pipe."""
    return RenderError(code, message, permanent=permanent)


@dataclass(frozen=True)
class RenderedVariant:
    """One encoded variant, ready to be stored."""

    name: str
    content_type: str
    width: int
    height: int
    frames: int
    data: bytes

    @property
    def size(self) -> int:
        """Length of the encoded bytes."""
        return len(self.data)
