"""The benchmark's figures as targets (met / missed, by how much) and as a markdown report."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

MIB = 1024 * 1024
VERIFY_READ = 64 * 1024
# Per-upload allowance for HTTP headers and JSON on top of the 64 KiB verification read.
HEADER_ALLOWANCE = 16 * 1024


def median(values: list[float]) -> float:
    """The median, 0 for no values."""
    return statistics.median(values) if values else 0.0


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (other work on the machine skews figures)."""
    return [round(value, 2) for value in os.getloadavg()]


def machine_info() -> dict[str, Any]:
    """Cores, CPU model, Python and OS of this machine."""
    cpu = platform.processor() or "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    system = platform.platform(terse=True)
    os_release = Path("/etc/os-release")
    if os_release.exists():
        for line in os_release.read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                system = line.split("=", 1)[1].strip('"')
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "python": sys.version.split()[0],
        "os": system,
        "load_start": load_average(),
    }


def settings_used(args: argparse.Namespace) -> dict[str, Any]:
    """What the HTTP benchmarks ran with (broker defaults unless named)."""
    return {
        "server": "gunicorn --workers 2 --worker-class sync wsgi:app",
        "BROKER_SIGNER": "fast | boto3",
        "BROKER_SIGNED_URL_WINDOW": "3600 (default: cache-stable URLs)",
        "BROKER_LOOKUP_CACHE_TTL / _SIZE": "30 / 10000 (default: lookup cache on)",
        "BROKER_DOWNLOAD_EXPIRES": "300 (default)",
        "BROKER_RATE_LIMIT_SIGN": (
            "1200/minute per user (default; counters in the broker's MongoDB, the default, "
            "unless the row says otherwise)"
        ),
        "logs and metrics": "JSON access log to a file; PROMETHEUS_MULTIPROC_DIR set",
        "JWT": "HS256",
        "wrk": (
            f"1 thread, {args.connections} connections, {args.warmup:g} s warm-up, "
            f"{args.seconds:g} s measured, loopback; fast and boto3 runs alternate; best of "
            f"{args.rounds} rounds"
        ),
        "callers": (
            "signed-url: 100 users each asking for their own image, in turn; batches: 20 users "
            "each with 100 images (the load stays under every per-user rate limit)"
        ),
    }


# ---- targets ----------------------------------------------------------------------------------


def _target(
    name: str, measured: float, goal: float, *, at_least: bool, unit: str = "x"
) -> dict[str, Any]:
    """One target: met or missed, and the margin relative to the goal."""
    met = measured >= goal if at_least else measured <= goal
    margin = (measured - goal) / goal if at_least else (goal - measured) / goal
    how = "headroom" if met else "short by"
    return {
        "name": name,
        "measured": round(measured, 3),
        "goal": f"{'≥' if at_least else '≤'} {goal:g}{unit}",
        "met": met,
        "verdict": f"{'met' if met else 'MISSED'} ({how} {abs(margin) * 100:.0f}%)",
        "unit": unit,
    }


def cpu_us_per_request(figures: dict[str, Any], cores: int) -> float:
    """CPU µs the broker and the database spent per request during a wrk run (0 if unknown)."""
    cpu = figures.get("cpu_percent_of_machine") or {}
    share = (cpu.get("broker", 0.0) + cpu.get("database", 0.0)) / 100
    return share * cores * 1e6 / figures["requests_per_s"] if figures["requests_per_s"] else 0.0


def evaluate(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target the issue sets, from one run's figures."""
    signer = results["signer"]["results"]
    endpoints = results["endpoints"]
    targets = [
        _target(
            "signer: fast vs boto3 (times faster)",
            signer["boto3"]["median_us"] / signer["fast"]["median_us"],
            50,
            at_least=True,
        ),
        _target(
            "signer: fast / HMAC floor",
            signer["fast"]["median_us"] / signer["floor"]["median_us"],
            2,
            at_least=False,
        ),
    ]
    rps = {name: figures["requests_per_s"] for name, figures in endpoints.items()}
    cores = results["machine"]["cores"] or 1
    cost = {name: cpu_us_per_request(figures, cores) for name, figures in endpoints.items()}

    def endpoint_target(name: str, fast: str, other: str, goal: float, unit: str = "x") -> None:
        scale = 100 if unit == "%" else 1
        target = _target(name, rps[fast] / rps[other] * scale, goal, at_least=True, unit=unit)
        # The same ratio from the CPU each request cost the broker and the database: other
        # work on a shared machine moves requests/s, much less this.
        if cost[fast] and cost[other]:
            target["per_cpu"] = round(cost[other] / cost[fast] * scale, 3)
            target["verdict"] += f"; by CPU per request: {target['per_cpu']:.3g}{unit}"
        targets.append(target)

    endpoint_target(
        "GET signed-url: fast / boto3 requests/s", "signed_url_fast", "signed_url_boto3", 1.8
    )
    endpoint_target(
        "GET signed-url (fast) / GET /healthz requests/s", "signed_url_fast", "healthz", 85, "%"
    )
    endpoint_target(
        "POST signed-urls (100 ids): fast / boto3 URLs/s", "batch_fast", "batch_boto3", 20
    )
    endpoint_target(
        "GET /images?limit=100&sign=1: fast / boto3 URLs/s", "list_sign_fast", "list_sign_boto3", 20
    )
    # "Costs no more than sign=1": equal within the noise of one run on a shared machine.
    endpoint_target(
        "GET /images?limit=100&sign=1&variant=thumb / sign=1 URLs/s (fast)",
        "list_thumb_fast",
        "list_sign_fast",
        95,
        "%",
    )
    for case, label in (("jpeg-24mpx", "24 Mpx JPEG"), ("png-40mpx", "40 Mpx PNG")):
        figures = results["variants"]["renderers"]["cases"][case]
        targets.append(
            _target(
                f"variants, {label}: pyvips / Pillow images per second (1 core)",
                figures["speedup_1_thread"],
                3,
                at_least=True,
            )
        )
        targets.append(
            _target(
                f"variants, {label}: pyvips / Pillow peak RSS",
                figures["memory_ratio"],
                1 / 3,
                at_least=False,
            )
        )
    pages = results["pagination"]
    targets.append(
        _target(
            "list: page 1000 / page 1 latency (medians)",
            median(pages["page1000_ms"]) / median(pages["page1_ms"]),
            2,
            at_least=False,
        )
    )
    uploads = results["upload_bytes"]
    worst = max(figures["s3_to_broker"] + figures["broker_to_s3"] for figures in uploads.values())
    spread = max(
        abs(a[key] - b[key])
        for a in uploads.values()
        for b in uploads.values()
        for key in ("client_to_broker", "broker_to_client", "broker_to_s3", "s3_to_broker")
    )
    bound = VERIFY_READ + HEADER_ALLOWANCE
    target = _target(
        "upload: broker↔S3 bytes ≤ 64 KiB read + 16 KiB headers, at any file size",
        worst / 1024,
        bound / 1024,
        at_least=False,
        unit=" KiB",
    )
    # Independent of file size: 1 MiB and 100 MiB differ by a few header bytes at most.
    if spread > 1024:
        target["met"] = False
        target["verdict"] = f"MISSED (1 MiB and 100 MiB differ by {spread} bytes)"
    else:
        target["verdict"] += f"; 1 MiB vs 100 MiB differ by {spread} B"
    targets.append(target)
    return targets


# ---- markdown ---------------------------------------------------------------------------------


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def _cpu(figures: dict[str, Any]) -> str:
    cpu = figures.get("cpu_percent_of_machine") or {}
    parts = [cpu.get(name, 0.0) for name in ("broker", "database", "wrk", "other")]
    return " / ".join(f"{part:.0f}" for part in parts)


def _kib(count: int) -> str:
    return f"{count:,} B ({count / 1024:.1f} KiB)"


def markdown(results: dict[str, Any]) -> str:
    """The whole report as markdown (what bench/results/latest.md holds)."""
    machine = results["machine"]
    lines = [
        "# Benchmark results",
        "",
        f"- date: {results['date']}",
        f"- machine: {machine['cores']} cores, {machine['cpu']}, {machine['os']}",
        f"- python: {machine['python']}",
        f"- load average (1/5/15 min) at start: {machine['load_start']}, "
        f"at end: {machine.get('load_end', '?')}",
        f"- services: MongoDB = {results['services']['mongodb']}, "
        f"S3 = {results['services']['s3']} (loopback)",
        "- CPU % (broker / database / wrk / other): shares of the whole machine during each "
        'measured wrk run; "other" is work outside the benchmark competing for the cores',
        "",
    ]
    lines += _signer_section(results["signer"])
    lines += _endpoint_sections(
        results["endpoints"], results["settings"], results["machine"]["cores"] or 1
    )
    lines += _upload_section(results["upload_bytes"])
    if "upload_cost" in results:
        lines += _upload_cost_lines(results["upload_cost"])
    lines += _pagination_section(results["pagination"])
    lines += _variants_section(results["variants"])
    lines += ["## Targets", "", _row("target", "measured", "goal", "result")]
    lines.append(_row("---", "---:", "---:", "---"))
    for target in results["targets"]:
        measured = f"{target['measured']:.3g}{target['unit']}"
        lines.append(_row(target["name"], measured, target["goal"], target["verdict"]))
    lines.append("")
    if results.get("profiles"):
        lines += [
            "## Profiles of missed targets (cProfile, requests straight into the WSGI app)",
            "",
            "```",
        ]
        lines += profiles_text(results["profiles"]).rstrip("\n").splitlines()
        lines += ["```", ""]
    return "\n".join(lines)


def _signer_section(signer: dict[str, Any]) -> list[str]:
    figures = signer["results"]
    fast, boto3, floor = (figures[name]["median_us"] for name in ("fast", "boto3", "floor"))
    return [
        "## 1. Presigning (µs per URL, median of rounds)",
        "",
        _row("fast", "boto3", "HMAC floor", "fast/boto3", "fast/floor"),
        _row("---:", "---:", "---:", "---:", "---:"),
        _row(
            f"{fast:.2f}",
            f"{boto3:.1f}",
            f"{floor:.2f}",
            f"{fast / boto3:.4f} ({boto3 / fast:.0f}x faster)",
            f"{fast / floor:.2f}",
        ),
        "",
    ]


def _endpoint_sections(
    endpoints: dict[str, Any], settings: dict[str, Any], cores: int
) -> list[str]:
    healthz = endpoints["healthz"]["requests_per_s"]
    header = ("request", "signer", "requests/s", "p50 ms", "p99 ms", "CPU µs/req", "errors")
    lines = [
        "## 2. Signed-URL endpoint under gunicorn (wrk over loopback)",
        "",
        "Settings (broker defaults unless named):",
        "",
        *(f"- {name}: {value}" for name, value in settings.items()),
        "",
        _row(*header, "vs /healthz", "CPU %"),
        _row("---", "---", *["---:"] * (len(header) - 2), "---:", "---:"),
    ]

    def cells(figures: dict[str, Any], rate: str) -> list[object]:
        return [
            rate,
            f"{figures['p50_ms']:.2f}",
            f"{figures['p99_ms']:.2f}",
            f"{cpu_us_per_request(figures, cores):.0f}",
            sum(figures["errors"].values()),
        ]

    rows = [
        ("GET /healthz (ceiling)", "-", "healthz"),
        ("GET /images/&lt;id&gt;/signed-url", "fast", "signed_url_fast"),
        ("GET /images/&lt;id&gt;/signed-url", "boto3", "signed_url_boto3"),
    ]
    for label, signer, name in rows:
        figures = endpoints[name]
        share = f"{figures['requests_per_s'] / healthz * 100:.0f}%"
        rate = f"{figures['requests_per_s']:.0f}"
        lines.append(_row(label, signer, *cells(figures, rate), share, _cpu(figures)))
    lines += ["", *_ratio_lines(endpoints, "signed_url", cores), ""]
    if all(f"signed_url_{name}" in endpoints for name in LIMITER_ROWS):
        lines += _limiter_lines(endpoints, cores, header, cells)
    lines += [
        "## 3. 100-URL batches",
        "",
        _row(*header[:3], "URLs/s", *header[3:], "CPU %"),
        _row("---", "---", *["---:"] * (len(header) - 1), "---:"),
    ]
    for label, prefix, signers in (
        ("POST /images/signed-urls (100 ids)", "batch", ("fast", "boto3")),
        ("GET /images?limit=100&sign=1", "list_sign", ("fast", "boto3")),
        ("GET /images?limit=100&sign=1&variant=thumb", "list_thumb", ("fast",)),
    ):
        for signer in signers:
            figures = endpoints[f"{prefix}_{signer}"]
            urls = f"{figures['requests_per_s'] * 100:.0f}"
            rate = f"{figures['requests_per_s']:.1f}"
            lines.append(_row(label, signer, rate, urls, *cells(figures, rate)[1:], _cpu(figures)))
    lines += ["", *_ratio_lines(endpoints, "batch", cores)]
    lines += [*_ratio_lines(endpoints, "list_sign", cores), ""]
    lines += [
        "CPU µs/req is the CPU the broker and the database spent per request (from their CPU "
        "share of the machine during the run): other work on the machine moves it much less "
        "than it moves requests/s.",
        "",
    ]
    return lines


# The rate limiter's cost: signed-url (fast) with the counters where each row says.
LIMITER_ROWS = {
    "fast": "the broker's MongoDB (default: one count for every process)",
    "limits_memory": "each process (`memory://`: N processes, N x the limit)",
    "limits_off": "none (`BROKER_RATE_LIMIT_SIGN` empty: no limit)",
}


def _limiter_lines(
    endpoints: dict[str, Any],
    cores: int,
    header: tuple[str, ...],
    cells: Callable[[dict[str, Any], str], list[object]],
) -> list[str]:
    figures = {name: endpoints[f"signed_url_{name}"] for name in LIMITER_ROWS}
    lines = [
        "### The rate limiter on the hot path (GET /images/&lt;id&gt;/signed-url, fast signer)",
        "",
        _row("rate-limit counters in", *header[2:], "CPU %"),
        _row("---", *["---:"] * (len(header) - 1)),
    ]
    for name, label in LIMITER_ROWS.items():
        rate = f"{figures[name]['requests_per_s']:.0f}"
        lines.append(_row(label, *cells(figures[name], rate), _cpu(figures[name])))
    unlimited = figures["limits_off"]
    for name, what in (("fast", "shared counters"), ("limits_memory", "per-process counters")):
        extra = cpu_us_per_request(figures[name], cores) - cpu_us_per_request(unlimited, cores)
        lost = 1 - figures[name]["requests_per_s"] / max(unlimited["requests_per_s"], 1e-9)
        lines.append(
            f"- {what}: +{extra:.0f} µs CPU (broker + database) per request, "
            f"{lost * 100:.0f}% fewer requests/s than no limit"
        )
    return [*lines, ""]


LABELS = {
    "signed_url": "GET /images/&lt;id&gt;/signed-url",
    "batch": "POST /images/signed-urls (100 ids)",
    "list_sign": "GET /images?limit=100&sign=1",
}


def _ratio_lines(endpoints: dict[str, Any], prefix: str, cores: int) -> list[str]:
    fast, boto3 = endpoints[f"{prefix}_fast"], endpoints[f"{prefix}_boto3"]
    by_rate = fast["requests_per_s"] / max(boto3["requests_per_s"], 1e-9)
    by_cpu = cpu_us_per_request(boto3, cores) / max(cpu_us_per_request(fast, cores), 1e-9)
    label = LABELS[prefix]
    return [f"- {label}: fast / boto3 = {by_rate:.2f}x by requests/s, {by_cpu:.2f}x by CPU µs/req"]


def _upload_cost_lines(cost: dict[str, Any]) -> list[str]:
    broker, database = cost["broker_cpu_ms_per_upload"], cost["database_cpu_ms_per_upload"]
    return [
        f"CPU per upload (presign + confirm; {cost['uploads']} uploads by {cost['clients']} "
        f"users at once, {cost['uploads_per_s']:.1f} uploads/s): broker {broker:.1f} ms, "
        f"database {database:.1f} ms, so about {1000 / broker:.0f} uploads/s per broker core.",
        "",
    ]


def _upload_section(uploads: dict[str, Any]) -> list[str]:
    lines = [
        "## 4. Bytes through the broker per upload (presign → PUT to S3 → confirm)",
        "",
        _row("file", "client→broker", "broker→client", "broker→S3", "S3→broker"),
        _row("---", "---:", "---:", "---:", "---:"),
    ]
    for label, figures in uploads.items():
        lines.append(
            _row(
                label,
                _kib(figures["client_to_broker"]),
                _kib(figures["broker_to_client"]),
                _kib(figures["broker_to_s3"]),
                _kib(figures["s3_to_broker"]),
            )
        )
    lines += [
        "",
        "The file itself goes from the client straight to S3 (not counted: it never touches "
        "the broker). S3→broker is the confirm's HEAD, the ranged GET of at most 64 KiB "
        "(magic bytes, width and height) and the tagging call.",
        "",
    ]
    return lines


def _pagination_section(pages: dict[str, Any]) -> list[str]:
    lines = [
        f"## 5. Listing a {pages['images']:,}-image library "
        f"(GET /images?limit={pages['page_size']}, cursor pagination)",
        "",
        _row("page", "median ms", "min ms", "max ms", "fetches"),
        _row("---", "---:", "---:", "---:", "---:"),
    ]
    for label, key in (("1", "page1_ms"), (str(pages["deep_page"]), "page1000_ms")):
        values = pages[key]
        lines.append(
            _row(
                label,
                f"{median(values):.1f}",
                f"{min(values):.1f}",
                f"{max(values):.1f}",
                len(values),
            )
        )
    lines += [
        "",
        f"Seeded with insert_many in {pages['seed_seconds']} s (indexes: "
        f"{pages['index_seconds']} s). Followed next_cursor for "
        f"{pages['pages_walked_via_next_cursor']} pages (median "
        f"{pages['walk_page_ms_median']} ms each); page {pages['deep_page']}'s cursor: "
        f"{pages['deep_cursor']}.",
        "",
    ]
    return lines


def profiles_text(profiles: dict[str, Any]) -> str:
    """Profile summaries as plain text: top functions and components by share of own time."""
    out: list[str] = []
    for name, profile in profiles.items():
        out.append(
            f"{name}: {profile['us_per_request']:.0f} µs/request in-process, unprofiled "
            f"({profile['requests']} requests profiled)"
        )
        out.append(
            "  own time by component: "
            + ", ".join(f"{component} {share:.0f}%" for component, share in profile["by_component"])
        )
        out.append("  top functions by own time:")
        for function, share in profile["top_own"]:
            out.append(f"    {share:5.1f}%  {function}")
        out.append("  top functions by cumulative time (outside Flask/Werkzeug):")
        for function, share in profile["top_cumulative"]:
            out.append(f"    {share:5.1f}%  {function}")
        out.append("")
    return "\n".join(out) + ("\n" if out else "")


def _variants_section(variants: dict[str, Any]) -> list[str]:
    renderers, worker = variants["renderers"], variants["worker"]
    lines = [
        "## 6. Variants (thumb 320x320 + medium 1280x1280, WebP q80 effort 4)",
        "",
        "Renderers, each measurement in a fresh process (bench_variants.py; medians of rounds):",
        "",
        _row("original", "engine", "images/s", "images/CPU-s", "peak RSS MiB"),
        _row("---", "---", "---:", "---:", "---:"),
    ]
    for case, data in renderers["cases"].items():
        for engine, figures in data["engines"].items():
            lines.append(
                _row(
                    case,
                    engine,
                    f"{figures['images_per_s']:.2f}",
                    f"{figures['images_per_cpu_s']:.2f}",
                    f"{figures['peak_rss_mib']:.0f}",
                )
            )
    lines += [
        "",
        "The worker on RGW (`flask --app wsgi worker --once`, one process with its render child:"
        " GET the original, render, PUT both variants, record):",
        "",
        _row(
            "original",
            "images",
            "s/image (median job)",
            "images/s",
            "CPU s/image",
            "worker RSS MiB",
            "render RSS MiB",
        ),
        _row("---", "---:", "---:", "---:", "---:", "---:", "---:"),
    ]
    for case, figures in worker.items():
        lines.append(
            _row(
                case,
                figures["images"],
                f"{figures['seconds_per_image']:.2f}",
                f"{figures['images_per_s']:.2f}",
                f"{figures['cpu_s_per_image']:.2f}",
                f"{figures['worker_peak_rss_mib']:.0f}",
                f"{figures['render_peak_rss_mib']:.0f}",
            )
        )
    lines += [
        "",
        "CPU s/image counts the worker and its render child, start-up included (the child's"
        " self-test, the catch-up query).",
        "",
    ]
    return lines
