"""Variants: resized, metadata-free display copies of each image, made outside the API process.

This package owns the feature:

- :mod:`broker.variants.spec`: the operator's settings (``BROKER_VARIANTS``,
  ``BROKER_VARIANT_FORMAT``, quality, effort and the per-image limits) parsed into frozen
  dataclasses, with error messages that name the variable and the faulty item;
- :mod:`broker.variants.records`: what an image's ``variants`` map holds, the keys of variant
  objects (``variants.v1/<original key's stem>/<name>.<digest>.<ext>``) and what is to be made;
- :mod:`broker.variants.service`: the use cases. The API process calls only
  :func:`~broker.variants.service.image_recorded` (confirm and multipart complete: a queue
  write, never a byte of the image); the rest runs in the worker and the sweeper;
- :mod:`broker.variants.worker` and :mod:`broker.variants.cli`: ``flask worker`` (claim with a
  lease, render, store, record; signals; ``--once``);
- :mod:`broker.variants.render`: original bytes (or a file) in, encoded variants out, with
  libvips (pyvips); imported by the render child only;
- :mod:`broker.variants.sandbox`: the renderer run in a child process under a memory ceiling and
  a wall-clock limit, so no image can crash or wedge the worker.
"""
