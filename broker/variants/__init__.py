"""Variants: resized, metadata-free display copies of each image, made outside the API process.

This package owns the feature. For now it holds its pure core, free of Flask, MongoDB and S3:

- :mod:`broker.variants.spec`: the operator's settings (``BROKER_VARIANTS``,
  ``BROKER_VARIANT_FORMAT``, quality, effort and the per-image limits) parsed into frozen
  dataclasses, with error messages that name the variable and the faulty item;
- :mod:`broker.variants.render`: original bytes (or a file) in, encoded variants out, with
  libvips (pyvips);
- :mod:`broker.variants.sandbox`: the renderer run in a child process under a memory ceiling and
  a wall-clock limit, so no image can crash or wedge the worker.
"""
