"""What an image records about its variants: their states, their object keys, their digests.

Pure rules shared by the API (what to show, what to sign) and the worker (what to make, where
to store it). An image's ``variants`` map holds one :class:`Variant` per name; the API shows
every configured name (a name the record lacks reads as ``pending``) and signs a variant only
once it is ``ready``.

Keys: ``variants.v1/<original key without its extension>/<name>.<digest>.<ext>``. A separate
top-level prefix, so the worker's credentials can be limited to writing there and a user's
prefix lists only originals; the name contains a dot, which no user segment does. The digest
covers what shapes the pixels (box, mode, format), so a changed setting writes a new key and a
cached signed URL never shows a stale picture.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from broker.variants.spec import OutputFormat, VariantSpec

PENDING = "pending"
READY = "ready"
FAILED = "failed"
STATES = (PENDING, READY, FAILED)

# What a signed answer says when it signed the original (no variant asked for, or not ready).
ORIGINAL = "original"
KEY_PREFIX = "variants.v1/"
# Variants never change under a key (the digest is in it): browsers may keep them for a year.
# Signed GETs pin their own Cache-Control anyway; this is what the object itself carries.
STORED_CACHE_CONTROL = "private, max-age=31536000, immutable"


@dataclass(frozen=True)
class Variant:
    """One variant of one image: its state, and once ready where it is and what it is."""

    state: str
    key: str | None = None
    content_type: str | None = None
    width: int | None = None
    height: int | None = None
    size: int | None = None
    # The digest of the spec and format it was made with (or failed with).
    digest: str | None = None
    error_code: str | None = None
    error_message: str | None = None

    @property
    def ready(self) -> bool:
        """Whether the variant can be signed."""
        return self.state == READY and self.key is not None


PENDING_VARIANT = Variant(PENDING)


def spec_digest(spec: VariantSpec, fmt: OutputFormat) -> str:
    """Eight hex digits naming what shapes a variant's pixels: its box, its mode, its format."""
    mode = "cover" if spec.cover else "fit"
    text = f"{spec.width}x{spec.height}:{mode}:{fmt.name}"
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:8]


def fingerprint(specs: Iterable[VariantSpec], fmt: OutputFormat) -> str:
    """What an image's variants were last completed for: every name with its digest."""
    named = sorted(f"{spec.name}={spec_digest(spec, fmt)}" for spec in specs)
    return hashlib.sha256(",".join(named).encode("ascii")).hexdigest()[:16]


def original_stem(original_key: str) -> str:
    """The original's key without its extension (``alice/0f3c….jpg`` → ``alice/0f3c…``)."""
    folder, slash, name = original_key.rpartition("/")
    return f"{folder}{slash}{name.rpartition('.')[0] or name}"


def variant_prefix(original_key: str) -> str:
    """The prefix under which every variant of ``original_key`` is stored (ends in ``/``)."""
    return f"{KEY_PREFIX}{original_stem(original_key)}/"


def variant_key(original_key: str, spec: VariantSpec, fmt: OutputFormat) -> str:
    """The key of one variant of ``original_key``."""
    return f"{variant_prefix(original_key)}{spec.name}.{spec_digest(spec, fmt)}.{fmt.extension}"


def stem_of(key: str) -> str | None:
    """The original's key without its extension, from a variant's key (None if it is not one)."""
    if not key.startswith(KEY_PREFIX):
        return None
    stem = key[len(KEY_PREFIX) :].rpartition("/")[0]
    return stem or None


def original_key_candidates(stem: str, extensions: Iterable[str]) -> list[str]:
    """The keys an original with this stem may have: one per known extension (``.jpg``…)."""
    return [stem + extension for extension in extensions]


def pending_variants(specs: Iterable[VariantSpec]) -> dict[str, Variant]:
    """A fresh image's map: every configured variant pending."""
    return {spec.name: PENDING_VARIANT for spec in specs}


def shown_variants(stored: Mapping[str, Variant], names: Iterable[str]) -> dict[str, Variant]:
    """The map the API shows: every configured name, ``pending`` where the record has none."""
    return {name: stored.get(name, PENDING_VARIANT) for name in names}


def settled(variants: Mapping[str, Variant]) -> bool:
    """Whether no variant in the map is still to be made (ready or failed, every one)."""
    return all(variant.state != PENDING for variant in variants.values())


def to_render(
    stored: Mapping[str, Variant], specs: Iterable[VariantSpec], fmt: OutputFormat
) -> list[VariantSpec]:
    """The configured variants the worker must make: never made, or made with other settings.

    A variant that failed with the current settings is not retried (the same bytes would fail
    the same way); a changed setting gives it a new digest, and a new try.
    """
    wanted = []
    for spec in specs:
        current = stored.get(spec.name)
        if current is None or current.state == PENDING or current.digest != spec_digest(spec, fmt):
            wanted.append(spec)
    return wanted


def unconfigured(stored: Mapping[str, Variant], specs: Iterable[VariantSpec]) -> list[str]:
    """The names the record holds that are no longer configured (to forget), sorted."""
    names = {spec.name for spec in specs}
    return sorted(name for name in stored if name not in names)


def superseded_keys(stored: Mapping[str, Variant], kept: Mapping[str, Variant]) -> list[str]:
    """Keys the record pointed at that the new map no longer does (replaced or unconfigured)."""
    live = {variant.key for variant in kept.values() if variant.key}
    return sorted({v.key for v in stored.values() if v.key and v.key not in live})
