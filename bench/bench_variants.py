"""Variant throughput and peak memory: the broker's pyvips renderer vs two Pillow baselines.

Usage: python bench/bench_variants.py [--iterations N] [--rounds R] [--json PATH]

Two originals, made once into a temporary directory: a 24 Mpx JPEG photo (6000x4000, gradient
plus sensor-like noise, quality 90) and a 40 Mpx PNG (8000x5000, smooth gradients, as a PNG
under the upload limit is). Each is turned into both default variants (thumb 320x320 and medium
1280x1280, WebP quality 80, effort/method 4) by

* pyvips, 1 thread  -- ``broker.variants.render.render_variants`` with libvips concurrency 1
  (the per-core figure: what one worker per core gets), malloc set up and trimmed between
  images as in the render child (``sandbox.tune_allocator``, ``sandbox.release_memory``);
* pyvips, default   -- the same with libvips' default concurrency (one thread per core);
* Pillow, conventional -- what Pillow's documentation shows: ``open``,
  ``ImageOps.exif_transpose`` (which returns a decoded copy: the original is decoded at full
  size), ``thumbnail`` with its defaults (bicubic, reducing_gap 2) to the medium, ``save``
  WebP, then the thumb from the medium (one decode for both, as for pyvips);
* Pillow, tuned     -- by hand for speed and quality: ``Image.draft`` first (JPEG DCT scaling
  to the smallest size that still covers the medium; PNG has none), then as above with
  Lanczos and reducing_gap 3 (the filter libvips' thumbnail uses).

The goal (issue 12: pyvips at least 3x faster on one core, at most a third of the peak RSS)
is evaluated against each baseline separately, so the report says which it meets against
which.

Every measurement runs in a fresh child process: it renders once to warm up, then N times, and
reports wall and CPU seconds per image; the parent reads the child's peak RSS from ``wait4``
(exact for that child, unlike RUSAGE_CHILDREN's maximum over all children). The parent itself
never imports an image library and makes the originals in a child too: Linux counts the RSS a
child had as a copy of its parent, before ``exec``, into that child's peak. Rounds interleave
the contenders so that background load hits them alike; the median round is reported. Also
measured: the RSS of a child that imports nothing, and of one that only imports the library.
Prints a table and writes the figures to bench/results/variants.json (or ``--json``).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

BOXES = ((1280, 1280), (320, 320))
QUALITY, EFFORT = 80, 4
CASES = {"jpeg-24mpx": (6000, 4000), "png-40mpx": (8000, 5000)}
ENGINES = ("pyvips-1-thread", "pyvips-default", "pillow-conventional", "pillow-tuned")
# What each engine's process holds before it renders anything (see ``floor`` below).
FLOOR_OF = {
    "pyvips-1-thread": "renderer",
    "pyvips-default": "renderer",
    "pillow-conventional": "pillow",
    "pillow-tuned": "pillow",
}
# The baselines the goal is measured against, and the goal itself (issue 12).
BASELINES = ("pillow-conventional", "pillow-tuned")
SPEED_GOAL, MEMORY_GOAL = 3.0, 1 / 3


def original_path(directory: Path, case: str) -> Path:
    """Where the original of ``case`` is written."""
    return directory / (case + (".jpg" if case.startswith("jpeg") else ".png"))


def make_originals(directory: Path) -> None:
    """Write the two originals (libvips makes them fast, streaming)."""
    import pyvips

    for case, (width, height) in CASES.items():
        xyz = pyvips.Image.xyz(width, height)
        red, green = xyz[0] * 255 / width, xyz[1] * 255 / height
        image = red.bandjoin([green, (red + green) / 2])
        if case.startswith("jpeg"):
            image = image + pyvips.Image.gaussnoise(width, height, sigma=8, mean=0)
        image = image.cast("uchar").copy(interpretation="srgb")
        path = original_path(directory, case)
        if case.startswith("jpeg"):
            image.jpegsave(str(path), Q=90)
        else:
            image.pngsave(str(path), compression=6)


def pillow_variants(path: Path, *, tuned: bool) -> list[bytes]:
    """A Pillow baseline: one decode (DCT-scaled for JPEG when ``tuned``), the medium, then the
    thumb from the medium."""
    from PIL import Image, ImageOps

    outputs = []
    with Image.open(path) as original:
        width, height = original.size
        scale = min(BOXES[0][0] / width, BOXES[0][1] / height, 1.0)
        if tuned:
            original.draft("RGB", (math.ceil(width * scale), math.ceil(height * scale)))
        image = ImageOps.exif_transpose(original)
        if image.mode not in ("RGB", "RGBA"):
            image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
        for box in BOXES:  # largest first: each thumbnail shrinks the same image further
            if tuned:
                image.thumbnail(box, Image.Resampling.LANCZOS, reducing_gap=3.0)
            else:
                image.thumbnail(box)
            out = io.BytesIO()
            image.save(out, "WEBP", quality=QUALITY, method=EFFORT)
            outputs.append(out.getvalue())
    return outputs


def child(engine: str, path: Path, iterations: int) -> None:
    """Measure one engine on one original in this (fresh) process; print JSON."""
    if engine == "make-originals":
        make_originals(path)
        print(json.dumps({}))
        return
    if engine == "versions":
        import pyvips
        from PIL import __version__ as pillow_version

        libvips = ".".join(str(pyvips.version(i)) for i in range(3))
        print(
            json.dumps({"libvips": libvips, "pyvips": pyvips.__version__, "pillow": pillow_version})
        )
        return
    if engine == "floor-nothing":
        print(json.dumps({}))
        return
    if engine == "floor-renderer":
        # What the render child imports (the package loads no web stack until asked to).
        import broker.variants.render
        import broker.variants.sandbox  # noqa: F401

        print(json.dumps({}))
        return
    if engine == "floor-pillow":
        from PIL import Image, ImageOps  # noqa: F401

        print(json.dumps({}))
        return
    if engine.startswith("pillow"):
        tuned = engine == "pillow-tuned"

        def render() -> list[bytes]:
            return pillow_variants(path, tuned=tuned)
    else:
        from broker.variants.render import render_variants
        from broker.variants.sandbox import release_memory, tune_allocator
        from broker.variants.spec import FORMATS, RenderLimits, VariantSettings, parse_variants

        threads = 1 if engine == "pyvips-1-thread" else os.cpu_count() or 1
        # What Settings.variant_settings builds, without the broker's settings module.
        settings = VariantSettings(
            specs=parse_variants(",".join(f"v{w}:{w}x{h}" for w, h in BOXES)),
            format=FORMATS["webp"],
            quality=QUALITY,
            effort=EFFORT,
            limits=RenderLimits(40_000_000, 1 << 30, 60.0, threads),
        )

        tune_allocator()  # as the render child does

        def render() -> list[bytes]:
            # Then, as the render child does between images, the heap's free pages go back.
            data = [variant.data for variant in render_variants(path, settings)]
            release_memory()
            return data

    sizes = [len(data) for data in render()]  # warm-up: first-call costs are not throughput
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(iterations):
        render()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    print(json.dumps({"wall_s": wall / iterations, "cpu_s": cpu / iterations, "bytes": sizes}))


def run_child(engine: str, path: Path, iterations: int) -> dict[str, Any]:
    """Run :func:`child` in a fresh process; add its exact peak RSS (wait4)."""
    command = [sys.executable, __file__, "--child", engine, str(path), str(iterations)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, cwd=REPO)
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{engine} on {path.name} failed ({process.returncode})")
    figures: dict[str, Any] = json.loads(output)
    figures["peak_rss_mib"] = usage.ru_maxrss / 1024  # Linux reports KiB
    return figures


def measure(iterations: int, rounds: int) -> dict[str, Any]:
    """Every engine on every original, ``rounds`` interleaved rounds; medians."""
    results: dict[str, Any] = {"floors_mib": {}, "cases": {}}
    with tempfile.TemporaryDirectory(prefix="bench-variants-") as tmp:
        run_child("make-originals", Path(tmp), 0)
        originals = {case: original_path(Path(tmp), case) for case in CASES}
        results["versions"] = run_child("versions", Path(tmp), 0)
        results["versions"].pop("peak_rss_mib")
        for floor in ("nothing", "renderer", "pillow"):
            figures = run_child(f"floor-{floor}", Path(tmp), 0)
            results["floors_mib"][floor] = figures["peak_rss_mib"]
        for case, path in originals.items():
            runs: dict[str, list[dict[str, Any]]] = {engine: [] for engine in ENGINES}
            for _ in range(rounds):
                for engine in ENGINES:
                    runs[engine].append(run_child(engine, path, iterations))
            results["cases"][case] = {
                "original_bytes": path.stat().st_size,
                "pixels": CASES[case][0] * CASES[case][1],
                "engines": {engine: _median(figures) for engine, figures in runs.items()},
            }
            for engine, figures in results["cases"][case]["engines"].items():
                floor = results["floors_mib"][FLOOR_OF[engine]]
                figures["working_mib"] = figures["peak_rss_mib"] - floor
            engines = results["cases"][case]["engines"]
            results["cases"][case]["against"] = {
                baseline: compare(engines["pyvips-1-thread"], engines[baseline])
                for baseline in BASELINES
            }
    return results


def compare(pyvips: dict[str, Any], pillow: dict[str, Any]) -> dict[str, Any]:
    """pyvips (one thread) against one Pillow baseline: the ratios, and whether each goal is met."""
    ratios: dict[str, Any] = {
        "speedup_1_thread": pillow["wall_s"] / pyvips["wall_s"],
        "speedup_per_cpu_second": pillow["cpu_s"] / pyvips["cpu_s"],
        "memory_ratio": pyvips["peak_rss_mib"] / pillow["peak_rss_mib"],
        "working_memory_ratio": pyvips["working_mib"] / pillow["working_mib"],
    }
    ratios["speed_goal_met"] = ratios["speedup_1_thread"] >= SPEED_GOAL
    ratios["memory_goal_met"] = ratios["memory_ratio"] <= MEMORY_GOAL
    return ratios


def _median(figures: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each measured figure over the rounds."""
    return {
        "wall_s": statistics.median(f["wall_s"] for f in figures),
        "cpu_s": statistics.median(f["cpu_s"] for f in figures),
        "images_per_s": 1 / statistics.median(f["wall_s"] for f in figures),
        "images_per_cpu_s": 1 / statistics.median(f["cpu_s"] for f in figures),
        "peak_rss_mib": statistics.median(f["peak_rss_mib"] for f in figures),
        "output_bytes": figures[0]["bytes"],
    }


def table(results: dict[str, Any]) -> str:
    """The figures as a Markdown table."""
    lines = [
        "| original | engine | images/s | images/CPU-s | peak RSS MiB | above import MiB "
        "| thumb / medium bytes |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for case, data in results["cases"].items():
        for engine, f in data["engines"].items():
            sizes = " / ".join(str(n) for n in reversed(f["output_bytes"]))
            lines.append(
                f"| {case} | {engine} | {f['images_per_s']:.2f} | {f['images_per_cpu_s']:.2f} "
                f"| {f['peak_rss_mib']:.0f} | {f['working_mib']:.0f} | {sizes} |"
            )
    lines.append("")
    for case, data in results["cases"].items():
        for baseline, ratios in data["against"].items():
            speed = "met" if ratios["speed_goal_met"] else "missed"
            memory = "met" if ratios["memory_goal_met"] else "missed"
            lines.append(
                f"{case} vs {baseline}: pyvips (1 thread) runs at "
                f"{ratios['speedup_1_thread']:.2f}x its speed "
                f"({ratios['speedup_per_cpu_second']:.2f}x per CPU-second; >= {SPEED_GOAL:g}x "
                f"{speed}) in {ratios['memory_ratio']:.2f}x its peak RSS "
                f"({ratios['working_memory_ratio']:.2f}x above each library's import; "
                f"<= {MEMORY_GOAL:.2f}x {memory})"
            )
    floors = results["floors_mib"]
    lines.append(
        f"Peak RSS of a child that imports nothing: {floors['nothing']:.0f} MiB; the renderer "
        f"(broker package included): {floors['renderer']:.0f} MiB; Pillow: "
        f"{floors['pillow']:.0f} MiB"
    )
    return "\n".join(lines)


def main() -> None:
    """Parse arguments, measure, print, write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "variants.json")
    parser.add_argument("--child", nargs=3, metavar=("ENGINE", "PATH", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        engine, path, iterations = args.child
        child(engine, Path(path), int(iterations))
        return
    started = datetime.now(UTC)
    results = measure(args.iterations, args.rounds)
    results.update(
        {
            "date": started.strftime("%Y-%m-%d %H:%M UTC"),
            "iterations": args.iterations,
            "rounds": args.rounds,
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "load_average": list(os.getloadavg()),
            "variants": [f"{w}x{h}" for w, h in BOXES],
            "webp_quality": QUALITY,
            "webp_effort": EFFORT,
            "max_rss_unit": "MiB, from wait4 on each measuring child",
        }
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(f"\nwritten to {args.json}")


if __name__ == "__main__":
    main()
