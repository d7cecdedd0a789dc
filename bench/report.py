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

from broker.sliding_window import lease_cap

MIB = 1024 * 1024
VERIFY_READ = 64 * 1024
# Per-upload allowance for HTTP headers and JSON on top of the 64 KiB verification read.
HEADER_ALLOWANCE = 16 * 1024


# Rounds from which an endpoint target is the median of the rounds' paired ratios.
PAIRED_ROUNDS = 3


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


def settings_used(
    args: argparse.Namespace,
    server_line: Callable[[str], str],
    lease_warmup: tuple[int, int, int],
) -> dict[str, Any]:
    """What the HTTP benchmarks ran with (broker defaults unless named); ``lease_warmup``: the
    hits of one caller through one worker before its rate-limit leases reach their cap, and the
    requests sent before each signed-url and each batch run so that they all have."""
    ramp_hits, warmup_requests, batch_warmup_requests = lease_warmup
    return {
        "server": " | ".join(f"{server_line(name)} wsgi:app" for name in args.worker_classes),
        "ceiling": "bench/bare_app.py (one Flask route returning a small JSON object) under the "
        "same gunicorn command, measured in the same run",
        "BROKER_SIGNER": "fast | boto3",
        "BROKER_SIGNED_URL_WINDOW": "3600 (default: cache-stable URLs)",
        "BROKER_LOOKUP_CACHE_TTL / _SIZE": "30 / 10000 (default: lookup cache on)",
        "BROKER_DOWNLOAD_EXPIRES": "300 (default)",
        "BROKER_RATE_LIMIT_SIGN": (
            "1200/minute per user (default; counters in the broker's MongoDB, the default, "
            "unless the row says otherwise)"
        ),
        "MONGODB_URI": (
            "the test server's, with retryWrites=false (its cost per retryable write grows with "
            f"the retryable writes it has taken: {SEE_COSTS})"
        ),
        "logs and metrics": "JSON access log to a file; PROMETHEUS_MULTIPROC_DIR set",
        "JWT": "HS256",
        "wrk": (
            f"1 thread, {args.connections} connections, {args.warmup:g} s warm-up, "
            f"{args.seconds:g} s measured, loopback; the ceiling, fast and boto3 runs "
            f"alternate; {args.rounds} rounds, each table row the server's best round, each "
            f"target the median of the rounds' own ratios (from {PAIRED_ROUNDS} rounds); "
            f"before each signed-url run {warmup_requests} requests "
            f"more (each batch run: {batch_warmup_requests}), so that every caller's rate-limit "
            f"lease in each worker has reached its cap "
            f"({ramp_hits} hits each): the run measures a long-lived broker's steady state, not "
            "a fresh one's ramp"
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


def cpu_split_us(figures: dict[str, Any], cores: int) -> tuple[float, float]:
    """(broker, database) CPU µs per request during a wrk run."""
    cpu = figures.get("cpu_percent_of_machine") or {}
    rate = figures["requests_per_s"] or 1e-9
    per_request = cores * 1e6 / 100 / rate
    return cpu.get("broker", 0.0) * per_request, cpu.get("database", 0.0) * per_request


def evaluate(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target the issues set, from one run's figures (the sections that ran)."""
    targets: list[dict[str, Any]] = []
    if "signer" in results:
        signer = results["signer"]["results"]
        targets += [
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
    if "endpoints" in results and "sync" in results["endpoints"]:
        targets += _endpoint_targets(results["endpoints"]["sync"], results["machine"]["cores"] or 1)
    if "pagination" in results:
        pages = results["pagination"]
        targets.append(
            _target(
                "list: page 1000 / page 1 latency (medians)",
                median(pages["page1000_ms"]) / median(pages["page1_ms"]),
                2,
                at_least=False,
            )
        )
    if "upload_bytes" in results:
        targets.append(_upload_target(results["upload_bytes"]))
    if "variants" in results:
        targets += _variant_targets(results["variants"])
    return targets


HEALTHZ_VS_BARE = "GET /healthz / bare Flask requests/s"
# The endpoint targets that the test database's CPU bounds (the report points them to what it
# costs per operation, when the run measured it).
SIGNED_URL_VS_BARE = "GET signed-url (fast) / bare Flask requests/s"
# The targets bench/run.py profiles inside a gunicorn worker when either is missed.
WORKER_PROFILED = (HEALTHZ_VS_BARE, SIGNED_URL_VS_BARE)
# Their goals: a share of a bare Flask route's requests/s, in percent.
HEALTHZ_GOAL = 75
SIGNED_URL_GOAL = 60
LIST_FAST_VS_BOTO3 = "GET /images?limit=100&sign=1: fast / boto3 URLs/s"


def _endpoint_targets(endpoints: dict[str, Any], cores: int) -> list[dict[str, Any]]:
    """The endpoint targets, on the sync worker class (gunicorn's default)."""
    targets: list[dict[str, Any]] = []
    rps = {name: figures["requests_per_s"] for name, figures in endpoints.items()}
    cost = {name: cpu_us_per_request(figures, cores) for name, figures in endpoints.items()}

    def endpoint_target(name: str, fast: str, other: str, goal: float, unit: str = "x") -> None:
        scale = 100 if unit == "%" else 1
        best = rps[fast] / max(rps[other], 1e-9) * scale
        paired = _round_ratios(endpoints, fast, other)
        # From three rounds on, the median of the rounds' own ratios: each pairs two runs made
        # a minute apart, where the best rounds of each may pair a fast minute with a slow one.
        ratio = median(paired) * scale if len(paired) >= PAIRED_ROUNDS else best
        target = _target(name, ratio, goal, at_least=True, unit=unit)
        if len(paired) >= PAIRED_ROUNDS:
            target["best_rounds"] = round(best, 3)
            target["verdict"] += (
                f"; median of {len(paired)} rounds' ratios (best rounds: {best:.3g}{unit})"
            )
        # The same ratio from the CPU each request cost the broker and the database: other
        # work on a shared machine moves requests/s, much less this.
        if cost[fast] and cost[other]:
            target["per_cpu"] = round(cost[other] / cost[fast] * scale, 3)
            target["verdict"] += f"; by CPU per request: {target['per_cpu']:.3g}{unit}"
        targets.append(target)

    endpoint_target(HEALTHZ_VS_BARE, "healthz", "bare", HEALTHZ_GOAL, "%")
    endpoint_target(SIGNED_URL_VS_BARE, "signed_url_fast", "bare", SIGNED_URL_GOAL, "%")
    endpoint_target(
        "GET signed-url: fast / boto3 requests/s", "signed_url_fast", "signed_url_boto3", 1.8
    )
    endpoint_target(
        "POST signed-urls (100 ids): fast / boto3 URLs/s", "batch_fast", "batch_boto3", 20
    )
    endpoint_target(LIST_FAST_VS_BOTO3, "list_sign_fast", "list_sign_boto3", 5)
    # "Costs no more than sign=1": equal within the noise of one run on a shared machine.
    if "list_thumb_fast" not in rps:  # a run made before the variants
        return targets
    endpoint_target(
        "GET /images?limit=100&sign=1&variant=thumb / sign=1 URLs/s (fast)",
        "list_thumb_fast",
        "list_sign_fast",
        95,
        "%",
    )
    return targets


# The Pillow baselines of bench_variants.py, as the targets name them.
PILLOW_BASELINES = {
    "pillow-conventional": "Pillow conventional (full decode)",
    "pillow-tuned": "Pillow tuned (draft)",
}


def _variant_targets(variants: dict[str, Any]) -> list[dict[str, Any]]:
    """pyvips against each Pillow baseline: speed and memory on each original kind."""
    targets = []
    for case, label in (("jpeg-24mpx", "24 Mpx JPEG"), ("png-40mpx", "40 Mpx PNG")):
        against = variants["renderers"]["cases"][case]["against"]
        for baseline, name in PILLOW_BASELINES.items():
            ratios = against[baseline]
            speed = _target(
                f"variants, {label}: pyvips / {name} images per second (1 core)",
                ratios["speedup_1_thread"],
                3,
                at_least=True,
            )
            # Wall time on a shared machine moves with the load; CPU seconds much less.
            speed["per_cpu"] = round(ratios["speedup_per_cpu_second"], 3)
            speed["verdict"] += f"; by CPU per image: {speed['per_cpu']:.3g}x"
            targets.append(speed)
            targets.append(
                _target(
                    f"variants, {label}: pyvips / {name} peak RSS",
                    ratios["memory_ratio"],
                    1 / 3,
                    at_least=False,
                )
            )
    return targets


def _upload_target(uploads: dict[str, Any]) -> dict[str, Any]:
    """Broker↔S3 bytes per upload: bounded, and independent of the file's size."""
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
    return target


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
    cores = machine["cores"] or 1
    if "signer" in results:
        lines += _signer_section(results["signer"])
    if "endpoints" in results:
        lines += _endpoint_sections(
            results["endpoints"], results["settings"], cores, "dbcost" in results
        )
    if "dbcost" in results:  # a run made before bench/dbcost.py has none
        lines += _database_cost_section(results["dbcost"], results.get("endpoints"), cores)
    if "confirm" in results:
        lines += _confirm_section(results["confirm"])
    if "endpoints" in results and len(results["endpoints"]) > 1:
        lines += _worker_class_section(results["endpoints"], results.get("confirm"), cores)
    if "upload_bytes" in results:
        lines += _upload_section(results["upload_bytes"])
    if "upload_cost" in results:
        lines += _upload_cost_lines(results["upload_cost"])
    if "pagination" in results:
        lines += _pagination_section(results["pagination"], "dbcost" in results)
    if "variants" in results:
        lines += _variants_section(results["variants"])
    lines += ["## Targets", "", _row("target", "measured", "goal", "result")]
    lines.append(_row("---", "---:", "---:", "---"))
    for target in results["targets"]:
        measured = f"{target['measured']:.3g}{target['unit']}"
        verdict = target["verdict"]
        if "dbcost" in results and target["name"] in (SIGNED_URL_VS_BARE, LIST_FAST_VS_BOTO3):
            verdict += f"; what the test database adds: {SEE_COSTS}"
        profiled = (results.get("worker_profile") or {}).get("signed_url")
        if profiled and target["name"] == SIGNED_URL_VS_BARE and not target["met"]:
            verdict += f"; what remains: {SEE_SIGNED_URL_PROFILE}"
        lines.append(_row(target["name"], measured, target["goal"], verdict))
    lines.append("")
    if results.get("profiles"):
        lines += [
            "## Profiles of missed targets (cProfile, requests straight into the WSGI app)",
            "",
            "```",
        ]
        lines += profiles_text(results["profiles"]).rstrip("\n").splitlines()
        lines += ["```", ""]
    if results.get("worker_profile"):  # a run made before bench/profile_worker.py has none
        lines += worker_profile_lines(results["worker_profile"])
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


# (key prefix, label, URLs per request) of every endpoint row, the ceiling first.
ROWS = (
    ("bare", "GET /bare (bare Flask: the ceiling)", 1),
    ("healthz", "GET /healthz", 1),
    ("signed_url", "GET /images/&lt;id&gt;/signed-url", 1),
    ("batch", "POST /images/signed-urls (100 ids)", 100),
    ("list_sign", "GET /images?limit=100&sign=1", 100),
    ("list_thumb", "GET /images?limit=100&sign=1&variant=thumb", 100),
)
LABELS = {prefix: label for prefix, label, _ in ROWS}


def _endpoint_sections(
    by_class: dict[str, dict[str, Any]],
    settings: dict[str, Any],
    cores: int,
    costs_measured: bool = False,
) -> list[str]:
    """Section 2; ``costs_measured``: the run measured what the test database costs per
    operation (the lines on its cost then point there)."""
    lines = [
        "## 2. Endpoints under gunicorn (wrk over loopback)",
        "",
        "Settings (broker defaults unless named):",
        "",
        *(f"- {name}: {value}" for name, value in settings.items()),
        "",
    ]
    for worker_class, endpoints in by_class.items():
        bare = endpoints["bare"]["requests_per_s"]
        lines += [
            f"### {worker_class} workers",
            "",
            _row(
                "request",
                "signer",
                "requests/s",
                "URLs/s",
                "p50 ms",
                "p99 ms",
                "CPU µs/req",
                "errors",
                "vs bare Flask",
                "CPU %",
            ),
            _row("---", "---", *["---:"] * 8),
        ]
        for prefix, label, urls in ROWS:
            for signer in ("fast", "boto3") if urls > 1 or prefix == "signed_url" else ("-",):
                key = prefix if signer == "-" else f"{prefix}_{signer}"
                if key not in endpoints:  # list_thumb runs with the fast signer only
                    continue
                figures = endpoints[key]
                rate = figures["requests_per_s"]
                lines.append(
                    _row(
                        label,
                        signer,
                        f"{rate:.0f}" if urls == 1 else f"{rate:.1f}",
                        f"{rate * urls:.0f}" if prefix not in ("bare", "healthz") else "-",
                        f"{figures['p50_ms']:.2f}",
                        f"{figures['p99_ms']:.2f}",
                        f"{cpu_us_per_request(figures, cores):.0f}",
                        sum(figures["errors"].values()),
                        f"{rate / bare * 100:.0f}%",
                        _cpu(figures),
                    )
                )
        lines += ["", *_ratio_lines(endpoints, cores, costs_measured), ""]
        if all(f"signed_url_{name}" in endpoints for name in LIMITER_ROWS):
            lines += _limiter_lines(endpoints, cores, costs_measured)
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


def _limiter_lines(endpoints: dict[str, Any], cores: int, costs_measured: bool) -> list[str]:
    figures = {name: endpoints[f"signed_url_{name}"] for name in LIMITER_ROWS}
    lines = [
        "#### The rate limiter on the hot path (GET /images/&lt;id&gt;/signed-url, fast signer)",
        "",
        _row(
            "rate-limit counters in",
            "requests/s",
            "p50 ms",
            "p99 ms",
            "CPU µs/req",
            "broker / database µs/req",
            "database round trips /1000 req",
            "errors",
            "CPU %",
        ),
        _row("---", *["---:"] * 8),
    ]
    for name, label in LIMITER_ROWS.items():
        run = figures[name]
        broker, database = cpu_split_us(run, cores)
        trips = round_trips_per_1000(run)
        lines.append(
            _row(
                label,
                f"{run['requests_per_s']:.0f}",
                f"{run['p50_ms']:.2f}",
                f"{run['p99_ms']:.2f}",
                f"{cpu_us_per_request(run, cores):.0f}",
                f"{broker:.0f} / {database:.0f}",
                "-" if trips is None else f"{trips:.1f}",
                sum(run["errors"].values()),
                _cpu(run),
            )
        )
    unlimited = figures["limits_off"]
    for name, what in (("fast", "shared counters"), ("limits_memory", "per-process counters")):
        extra = cpu_us_per_request(figures[name], cores) - cpu_us_per_request(unlimited, cores)
        lost = 1 - figures[name]["requests_per_s"] / max(unlimited["requests_per_s"], 1e-9)
        lines.append(
            f"- {what}: +{extra:.0f} µs CPU (broker + database) per request, "
            f"{lost * 100:.0f}% fewer requests/s than no limit"
        )
    shared, memory = round_trips_per_1000(figures["fast"]), round_trips_per_1000(unlimited)
    if shared is not None and memory is not None and shared > memory:
        # The shared counters' round trips are their leases (and a read of the previous window's
        # count per caller per window): what the database spends on them is its extra CPU.
        extra_trips = (shared - memory) / 1000
        extra_database = cpu_split_us(figures["fast"], cores)[1] - cpu_split_us(unlimited, cores)[1]
        lines.append(
            f"- shared counters: {extra_trips * 1000:.1f} more database round trips per 1000 "
            f"requests (a lease of up to {SIGN_LEASE_CAP} permits each, so at least "
            f"{1000 / SIGN_LEASE_CAP:.1f}); the test database (secantusdb) spent "
            f"~{extra_database / extra_trips / 1000:.1f} ms of CPU on each, where a real MongoDB "
            "spends ~0.1 ms on such a findAndModify"
            + (
                f" (the test server's cost grows with the collection's size: {SEE_COSTS})"
                if costs_measured
                else ""
            )
        )
    lines += _round_cost_lines("shared counters", figures["fast"], cores)
    return [*lines, ""]


def _round_cost_lines(what: str, run: dict[str, Any], cores: int) -> list[str]:
    """Where each round's CPU went, for a run whose rounds differ: the broker's per request,
    the database's per request and per round trip (none for a run that kept no rounds)."""
    rounds = run.get("rounds") or []
    if len(rounds) < 2:
        return []
    split = [cpu_split_us(figures, cores) for figures in rounds]
    trips = [round_trips_per_1000(figures) or 0.0 for figures in rounds]
    per_trip = [
        f"{database / count:.1f}" if count else "-"
        for (_, database), count in zip(split, trips, strict=True)
    ]
    rates = ", ".join(f"{figures['requests_per_s']:.0f}" for figures in rounds)
    brokers = ", ".join(f"{broker:.0f}" for broker, _ in split)
    databases = ", ".join(f"{database:.0f}" for _, database in split)
    counts = ", ".join(f"{count:.1f}" for count in trips)
    return [
        f"- {what}, round by round ({rates} requests/s): the broker spent {brokers} µs of CPU "
        f"per request, the database {databases} µs over {counts} round trips per 1000 requests "
        f"({', '.join(per_trip)} ms each)"
    ]


# The largest lease of the default signing limit (1200/minute).
SIGN_LEASE_CAP = lease_cap(1200)

# What the test database costs per operation (bench/dbcost.py), and a link to it: its heading's
# anchor as GitHub renders it, here and in the README's copy.
DATABASE_COST = "What the test database costs per operation, by collection size"
DATABASE_COST_LINK = "#what-the-test-database-costs-per-operation-by-collection-size"
SEE_COSTS = f"see [what the test database costs per operation]({DATABASE_COST_LINK})"
COST_OPERATIONS = {
    "lease": "rate-limit lease: findAndModify by _id ($inc, upsert; SharedCounts.add)",
    "count": "rate-limit count: find by _id (SharedCounts.count)",
    "page": "list page: one owner's 100 newest, hinted to its index (ImageRepository.page)",
    "library_page": "the same page of an owner holding most of the collection",
    "lease_after_writes": "rate-limit lease after {writes} writes as the benchmarks' brokers "
    "make them (retryWrites=false)",
    "lease_after_retryable_writes": "the same after {writes} retryable writes (pymongo's default)",
}
COST_SIZES = {
    "minimal": "only what it touches",
    "bench": "as the endpoint runs had it",
    "larger": "larger",
}
# Growth of the cost from the smallest collection to the largest above which it is the
# collection's size that is paid for (the documents read stay the same).
SCAN_GROWTH = 3.0
# Growth of the lease's cost after retryable writes above which it is their records' doing.
RETRYABLE_GROWTH = 2.0


def _ms(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.0f}"


def _database_cost_section(
    costs: dict[str, Any], endpoints: dict[str, Any] | None, cores: int
) -> list[str]:
    """The table of bench/dbcost.py and what its figures say."""
    lines = [
        f"### {DATABASE_COST}",
        "",
        "Each operation as the broker sends it (its own code), "
        + (
            "on a fresh secantusdb server of its own (only the collection's size differs "
            "between rows)"
            if costs.get("server") == "fresh"
            else "in a database of its own on the bench's secantusdb"
        )
        + f"; the server process's CPU per operation, the median of {costs['samples']} samples.",
        "",
        _row("operation", "documents in its collection", "database CPU ms/op", "index keys read"),
        _row("---", "---:", "---:", "---:"),
    ]
    order = list(COST_OPERATIONS)
    for row in sorted(costs["rows"], key=lambda row: order.index(row["operation"])):
        keys = row.get("keys_examined")
        writes = f"{row.get('earlier_writes', 0):,}"
        lines.append(
            _row(
                COST_OPERATIONS[row["operation"]].format(writes=writes),
                f"{row['documents']:,} ({COST_SIZES[row['size']]})",
                _ms(row["cpu_ms"]),
                "-" if keys is None else f"{keys:,}",
            )
        )
    lines += ["", *_database_cost_lines(costs, endpoints, cores), ""]
    return lines


def _earlier_writes_lines(
    plain: list[dict[str, Any]], retryable: list[dict[str, Any]]
) -> list[str]:
    """What the test server's retryable-write records cost the lease (none if not measured)."""
    if not plain or not retryable:
        return []
    before, after = plain[0]["cpu_ms"], retryable[0]["cpu_ms"]
    text = (
        f"- After {plain[0]['earlier_writes']:,} other writes the lease costs {_ms(before)} ms; "
        f"after as many more made as retryable writes, {_ms(after)} ms"
    )
    if after >= RETRYABLE_GROWTH * before:
        text += (
            ": the test server keeps the reply of every retryable write for 30 minutes (up to "
            "10,000) and looks through them all on each one, where a real MongoDB keeps one "
            "record per session. The brokers of these benchmarks connect with retryWrites=false "
            "(the broker's default stands), or each round would measure more of that list than "
            "the round before."
        )
    else:
        text += f": in this run less than {RETRYABLE_GROWTH:g} times as much."
    return [text]


def _growth(rows: list[dict[str, Any]]) -> float:
    """The cost in the largest collection over the cost in the smallest."""
    return float(rows[-1]["cpu_ms"]) / max(float(rows[0]["cpu_ms"]), 1e-9)


def _database_cost_lines(
    costs: dict[str, Any], endpoints: dict[str, Any] | None, cores: int
) -> list[str]:
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in COST_OPERATIONS}
    for row in costs["rows"]:
        rows[row["operation"]].append(row)
    lease, count, page, library = (
        rows[name] for name in ("lease", "count", "page", "library_page")
    )
    lines = []
    if lease and count:
        scans = _growth(lease) >= SCAN_GROWTH and _growth(count) < SCAN_GROWTH
        lines.append(
            "- The lease writes one document by _id, yet costs "
            + ", ".join(f"{_ms(row['cpu_ms'])} ms with {row['documents']:,}" for row in lease)
            + " documents in the collection, while reading that same document by _id costs "
            f"{_ms(min(row['cpu_ms'] for row in count))}-{_ms(max(row['cpu_ms'] for row in count))}"
            " ms at every size: "
            + (
                "its cost follows the collection's size, not what it touches (the test server "
                "scans the collection for it)."
                if scans
                else "in this run its cost does not follow the collection's size."
            )
        )
    if page:
        keys = sorted({row.get("keys_examined") for row in page}, key=lambda k: k or 0)
        text = (
            f"- The list page reads {' / '.join(f'{k:,}' for k in keys if k is not None)} index "
            "keys (explain) yet costs "
            + ", ".join(f"{_ms(row['cpu_ms'])} ms with {row['documents']:,}" for row in page)
            + " images in the collection"
        )
        if library:
            big = library[-1]
            text += (
                f"; page 1 of an owner holding {big['owner_documents']:,} of those "
                f"{big['documents']:,} reads {big.get('keys_examined') or 0:,} keys and costs "
                f"{_ms(big['cpu_ms'])} ms"
            )
        if _growth(page) >= SCAN_GROWTH:
            text += (
                ". The test server's hinted walk reads every key of the owner and besides costs "
                "more the larger the whole collection is."
            )
        else:
            text += ": in this run its cost does not follow the collection's size."
        lines.append(text)
    lines += _earlier_writes_lines(rows["lease_after_writes"], rows["lease_after_retryable_writes"])
    lines.append(
        "- A real MongoDB answers both from an index whatever the collection holds: the lease "
        "is a point lookup on _id, the page a range of at most "
        f"{costs.get('page_size', 100) + 1} keys of the owner's list index."
    )
    sync = (endpoints or {}).get("sync", {})
    at_minimal = []
    runs = ("signed_url_fast", "signed_url_limits_off")
    if lease and all(run in sync for run in runs):
        shared, unlimited = (round_trips_per_1000(sync[run]) for run in runs)
        extra = (shared or 0.0) - (unlimited or 0.0)
        measured = cpu_split_us(sync[runs[0]], cores)[1] - cpu_split_us(sync[runs[1]], cores)[1]
        # Said only when the smallest collection is the cheaper: else the figures say nothing.
        if extra > 0 and extra * lease[0]["cpu_ms"] < measured:
            at_minimal.append(
                f"the shared counters' {extra:.1f} round trips per 1000 signed-url requests at "
                f"most {extra * lease[0]['cpu_ms']:.0f} µs per request ({_ms(lease[0]['cpu_ms'])} "
                f"ms each) instead of the {measured:.0f} µs the sync run measured"
            )
    listed = sync.get("list_sign_fast")
    broker, database = cpu_split_us(listed, cores) if listed else (0.0, 0.0)
    if page and page[0]["cpu_ms"] * 1000 < database:
        at_minimal.append(
            f"a list page {_ms(page[0]['cpu_ms'])} ms instead of {database / 1000:.0f} ms "
            f"(sync, fast signer; the broker spent {broker / 1000:.0f} ms)"
        )
    if at_minimal:
        lines.append(
            "- With only what each operation touches in its collection, the test database would "
            "spend on " + "; on ".join(at_minimal) + "."
        )
    return lines


def round_trips_per_1000(figures: dict[str, Any]) -> float | None:
    """The database's operations per 1000 requests during a wrk run (None if not counted)."""
    counted = figures.get("database_ops")
    if not counted or not figures.get("requests"):
        return None
    return sum(int(count) for count in counted.values()) / int(figures["requests"]) * 1000


def _round_ratios(endpoints: dict[str, Any], run: str, other: str) -> list[float]:
    """Requests/s of ``run`` over ``other`` in each round: the runs of one round follow each
    other, so a change of the machine's speed between rounds moves both alike, where the
    ratio of two best rounds may pair a fast round with a slow one."""
    mine = endpoints[run].get("rounds_requests_per_s", [])
    theirs = endpoints[other].get("rounds_requests_per_s", [])
    return [a / max(b, 1e-9) for a, b in zip(mine, theirs, strict=False)]


def _ratio_lines(endpoints: dict[str, Any], cores: int, costs_measured: bool) -> list[str]:
    def ratio(fast: str, other: str) -> tuple[float, float]:
        by_rate = endpoints[fast]["requests_per_s"] / max(endpoints[other]["requests_per_s"], 1e-9)
        fast_cost = max(cpu_us_per_request(endpoints[fast], cores), 1e-9)
        return by_rate, cpu_us_per_request(endpoints[other], cores) / fast_cost

    lines = []
    for fast, label in (("healthz", "GET /healthz"), ("signed_url_fast", LABELS["signed_url"])):
        by_rate, by_cpu = ratio(fast, "bare")
        pairs = _round_ratios(endpoints, fast, "bare")
        per_round = ", ".join(f"{r * 100:.0f}%" for r in pairs)
        lines.append(
            f"- {label} / bare Flask = {by_rate * 100:.0f}% by requests/s of the best rounds "
            f"(round by round: {per_round}; median {median(pairs) * 100:.0f}%), "
            f"{by_cpu * 100:.0f}% by CPU µs/req"
        )
    for prefix in ("signed_url", "batch", "list_sign"):
        by_rate, by_cpu = ratio(f"{prefix}_fast", f"{prefix}_boto3")
        pairs = _round_ratios(endpoints, f"{prefix}_fast", f"{prefix}_boto3")
        per_round = ", ".join(f"{r:.2f}x" for r in pairs)
        lines.append(
            f"- {LABELS[prefix]}: fast / boto3 = {by_rate:.2f}x by requests/s of the best rounds "
            f"(round by round: {per_round}; median {median(pairs):.2f}x), "
            f"{by_cpu:.2f}x by CPU µs/req"
        )
        if prefix == "batch":
            lines += _round_cost_lines(f"{LABELS[prefix]} (fast)", endpoints["batch_fast"], cores)
    for signer in ("fast", "boto3"):
        broker, database = cpu_split_us(endpoints[f"list_sign_{signer}"], cores)
        lines.append(
            f"- {LABELS['list_sign']} ({signer}): per page the database spent {database:.0f} µs "
            f"of CPU, the broker {broker:.0f} µs"
            + (
                f" (the test server's list query costs more the larger its whole collection is, "
                f"whatever the page reads: {SEE_COSTS})"
                if costs_measured
                else ""
            )
        )
    return lines


def _confirm_section(figures: dict[str, Any]) -> list[str]:
    trips = figures["round_trips"]
    lines = [
        "## 3. Confirm (POST /images) on RGW: round trips and latency",
        "",
        f"In-process ({trips['confirms']} confirms of a {trips['object_bytes'] // 1024} KiB "
        f"PNG, one at a time): {trips['mongodb_per_confirm']:g} MongoDB and "
        f"{trips['s3_per_confirm']:g} S3 round trips per confirm; the whole confirm "
        f"p50 {trips['in_process']['p50_ms']:.2f} ms, p99 {trips['in_process']['p99_ms']:.2f} ms.",
        "",
        _row("round trip", "per confirm", "p50 ms", "p99 ms", "mean ms"),
        _row("---", "---:", "---:", "---:", "---:"),
    ]
    for name, call in trips["calls"].items():
        lines.append(
            _row(
                name,
                f"{call['per_confirm']:g}",
                f"{call['p50_ms']:.2f}",
                f"{call['p99_ms']:.2f}",
                f"{call['mean_ms']:.2f}",
            )
        )
    lines.append("")
    classes = [name for name in figures if name != "round_trips"]
    if classes:
        lines += [
            "Under gunicorn (each client presigns, PUTs straight to RGW and confirms, in turn, "
            "all clients at once):",
            "",
            _row("worker class", "clients", "confirms", "p50 ms", "p99 ms", "mean ms"),
            _row("---", "---:", "---:", "---:", "---:", "---:"),
        ]
        for name in classes:
            run = figures[name]
            lines.append(
                _row(
                    name,
                    run["clients"],
                    run["confirms"],
                    f"{run['p50_ms']:.2f}",
                    f"{run['p99_ms']:.2f}",
                    f"{run['mean_ms']:.2f}",
                )
            )
        lines.append("")
    return lines


def _worker_class_section(
    by_class: dict[str, dict[str, Any]], confirm: dict[str, Any] | None, cores: int
) -> list[str]:
    """sync against gthread, request by request, and which to run for which mix."""
    sync, threaded = by_class["sync"], by_class["gthread"]
    lines = [
        "## 4. Worker classes: sync vs gthread",
        "",
        _row(
            "request",
            "signer",
            "sync req/s",
            "gthread req/s",
            "gthread / sync",
            "sync p99 ms",
            "gthread p99 ms",
        ),
        _row("---", "---", "---:", "---:", "---:", "---:", "---:"),
    ]
    for key in (key for key in sync if key in threaded):
        split = key.endswith(("_fast", "_boto3"))
        prefix, _, signer = key.rpartition("_") if split else (key, "", "-")
        a, b = sync[key], threaded[key]
        lines.append(
            _row(
                LABELS[prefix],
                signer,
                f"{a['requests_per_s']:.0f}",
                f"{b['requests_per_s']:.0f}",
                f"{b['requests_per_s'] / max(a['requests_per_s'], 1e-9):.2f}",
                f"{a['p99_ms']:.2f}",
                f"{b['p99_ms']:.2f}",
            )
        )
    lines.append("")

    def gain(key: str) -> float:
        ratio: float = threaded[key]["requests_per_s"] / max(sync[key]["requests_per_s"], 1e-9)
        return ratio

    signing, batch = gain("signed_url_fast"), gain("batch_fast")
    advice = [
        f"- Signing (CPU-bound: token, caches, signer; it never waits): gthread answers "
        f"{signing:.2f}x sync's requests/s on GET signed-url and {batch:.2f}x on a 100-URL "
        "batch. A sync worker closes the connection after every answer, so each request pays "
        "a TCP handshake and its accept; gthread keeps connections alive."
    ]
    confirm_better = None
    if confirm and "sync" in confirm and "gthread" in confirm:
        a, b = confirm["sync"], confirm["gthread"]
        confirm_better = b["p99_ms"] <= a["p99_ms"]
        advice.append(
            f"- Confirm (waits on MongoDB and S3 for most of its time): p50 {a['p50_ms']:.1f} / "
            f"p99 {a['p99_ms']:.1f} ms on sync, {b['p50_ms']:.1f} / {b['p99_ms']:.1f} ms on "
            f"gthread, {a['clients']} clients on 2 workers. A sync worker waiting on S3 serves "
            "nobody else; a gthread worker serves other requests meanwhile."
        )
    if signing >= 1.1 and confirm_better is not False:
        advice.append(
            "- Recommendation: gthread (`--worker-class gthread --threads 4`) for every mix: "
            "it is ahead on signing and no worse on confirm."
        )
    elif signing >= 1.1:
        advice.append(
            "- Recommendation: gthread for signing-heavy mixes (galleries, batches), where it is "
            "clearly ahead; for upload-heavy mixes this run shows it no better than sync on "
            "confirm's p99."
        )
    else:
        advice.append("- Recommendation: this run shows no clear winner; sync is the default.")
    lines += ["Which worker class for which mix:", "", *advice, ""]
    return lines


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
        "## 5. Bytes through the broker per upload (presign → PUT to S3 → confirm)",
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
        "the broker). S3→broker is the confirm's ranged GET of at most 64 KiB (the object's "
        "headers, its magic bytes, width and height) and the tagging call.",
        "",
    ]
    return lines


def _pagination_section(pages: dict[str, Any], costs_measured: bool = False) -> list[str]:
    lines = [
        f"## 6. Listing a {pages['images']:,}-image library "
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
    keys = pages.get("database_keys_examined_page1")
    if keys is not None and keys > pages["page_size"] + 1:
        lines += [
            f"The database examined {keys:,} index keys for page 1 (explain): its hinted walk"
            " reads every key of the owner, here the whole library, for every page"
            + (
                f", and besides costs more the larger the whole collection is ({SEE_COSTS})"
                if costs_measured
                else ""
            )
            + ", so both latencies are its scan, not the cursor"
            f" (on MongoDB the hinted index walk reads {pages['page_size'] + 1}).",
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


# The two sides of a request inside a gunicorn worker (bench/profile_worker.py).
WORKER_SIDES = ("gunicorn", "the app")
# The purpose of the app's side that finds the image to sign (bench/profile_worker.py's PURPOSES).
IMAGE_LOOKUP = "the image lookup"
# The signed URL's part of the worker profile, and a link to it (its heading's anchor as GitHub
# renders it) from the signed URL's target when missed.
SIGNED_URL_PROFILE = "The signed URL against /healthz inside a gunicorn worker"
SIGNED_URL_PROFILE_LINK = "#the-signed-url-against-healthz-inside-a-gunicorn-worker"
SEE_SIGNED_URL_PROFILE = f"see [the signed URL inside a gunicorn worker]({SIGNED_URL_PROFILE_LINK})"


def worker_profile_lines(figures: dict[str, Any]) -> list[str]:
    """bench/profile_worker.py's figures: /healthz against /bare inside a gunicorn worker."""
    served = {name: figures[name]["gunicorn_cpu_us"] for name in ("bare", "healthz")}
    alone = {name: figures[name]["in_process_cpu_us"] for name in ("bare", "healthz")}
    more, app_more = served["healthz"] - served["bare"], alone["healthz"] - alone["bare"]
    gunicorn_more = more - app_more
    ceiling = served["bare"] / (HEALTHZ_GOAL / 100)
    heads = figures["heads"]
    extra = [name for name in heads["healthz"]["names"] if name not in heads["bare"]["names"]]
    lines = [
        "## /healthz against /bare inside a gunicorn worker",
        "",
        f"One sync worker each (`gunicorn --workers 1`, the repository's gunicorn.conf.py), wrk "
        f"with {figures['connections']} connections; CPU of gunicorn's master and worker per "
        f"request (best of {figures['rounds']} runs of {figures['seconds']:g} s, no profiler), "
        "and in-process: requests straight into the same WSGI app in a process set up as a "
        "worker (CPU per request, best of 5 rounds).",
        "",
        _row("CPU µs per request", "/bare", "/healthz", "more"),
        _row("---", "---:", "---:", "---:"),
        _row(
            "under gunicorn",
            f"{served['bare']:.0f}",
            f"{served['healthz']:.0f}",
            f"{more:+.0f}",
        ),
        _row(
            "in-process (the app)",
            f"{alone['bare']:.0f}",
            f"{alone['healthz']:.0f}",
            f"{app_more:+.0f}",
        ),
        _row(
            "gunicorn around the app (the difference)",
            f"{served['bare'] - alone['bare']:.0f}",
            f"{served['healthz'] - alone['healthz']:.0f}",
            f"{gunicorn_more:+.0f}",
        ),
        _row(
            "headers on the wire (bytes of the head)",
            f"{heads['bare']['headers']} ({heads['bare']['head_bytes']} B)",
            f"{heads['healthz']['headers']} ({heads['healthz']['head_bytes']} B)",
            f"{heads['healthz']['headers'] - heads['bare']['headers']:+d} "
            f"({heads['healthz']['head_bytes'] - heads['bare']['head_bytes']:+d} B)",
        ),
        "",
        "Runs under gunicorn, µs per request: "
        + "; ".join(
            f"/{name} " + ", ".join(f"{us:.0f}" for us in figures[name]["gunicorn_cpu_us_rounds"])
            for name in ("bare", "healthz")
        )
        + ".",
        "",
        f"Under gunicorn /healthz costs {more:.0f} µs more CPU per request than /bare, so by CPU "
        f"it answers {served['bare'] / served['healthz']:.0%} of /bare's requests/s (target "
        f"{HEALTHZ_GOAL}%: at most {ceiling:.0f} µs, "
        + (
            f"{served['healthz'] - ceiling:.0f} µs less than now). "
            if served["healthz"] > ceiling
            else "within it in this measurement). "
        )
        + f"The app: {app_more:.0f} µs more (in-process); gunicorn: {gunicorn_more:.0f} µs more "
        f"({gunicorn_more / more:.0%} of the gap) around an answer of {len(extra)} more headers"
        + (f" ({', '.join(extra)})." if extra else "."),
        "",
    ]
    profiles = {name: figures[name]["profile"] for name in ("bare", "healthz")}
    sides = WORKER_SIDES
    profiled_more = profiles["healthz"]["profiled_us"] - profiles["bare"]["profiled_us"]
    side_more = {
        side: profiles["healthz"]["sides_us"][side] - profiles["bare"]["sides_us"][side]
        for side in sides
    }
    lines += [
        f"cProfile of the worker under the same load ({profiles['bare']['requests']} and "
        f"{profiles['healthz']['requests']} requests, counted as the calls of Flask's "
        "`__call__`), per request. gunicorn's side is its own code and the stdlib and C "
        "functions it calls (parsing, start_response's header checks, sending, closing); the "
        "app's, everything else. Profiled µs are the worker's CPU time with the profiler's cost "
        f"in every call ({profiles['bare']['profiled_us'] / served['bare']:.1f}x and "
        f"{profiles['healthz']['profiled_us'] / served['healthz']:.1f}x the unprofiled "
        "figures): they only share the cost out. "
        f"Of the {profiled_more:.0f} profiled µs /healthz adds, gunicorn's side takes "
        f"{side_more['gunicorn']:.0f} ({side_more['gunicorn'] / (profiled_more or 1):.0%}), "
        f"the app's {side_more['the app']:.0f}.",
        "",
        *_profile_table(profiles["bare"], profiles["healthz"], "/bare", "/healthz"),
        "",
        "```",
        "own time by component, µs per request (/bare -> /healthz):",
        *_component_lines(profiles, {"bare": "/bare", "healthz": "/healthz"}),
        "functions whose own time grows most (µs more per request; calls per request):",
        *_growth_lines(figures["grows"]),
        "```",
        "",
    ]
    if "signed_url" in figures:  # a run made before the signed URL was profiled has none
        lines += _signed_url_profile_lines(figures)
    return lines


def _signed_url_profile_lines(figures: dict[str, Any]) -> list[str]:
    """The signed URL's part of the worker profile: its CPU against /bare's and /healthz's, what
    it adds over /healthz on each side, the app's side by purpose, the functions that grow."""
    names = ("bare", "healthz", "signed_url")
    served = {name: figures[name]["gunicorn_cpu_us"] for name in names}
    alone = {name: figures[name]["in_process_cpu_us"] for name in names}
    around = {name: served[name] - alone[name] for name in names}
    heads = figures["heads"]
    more = served["signed_url"] - served["healthz"]
    app_more = alone["signed_url"] - alone["healthz"]
    gunicorn_more = more - app_more
    ceiling = served["bare"] / (SIGNED_URL_GOAL / 100)
    extra = [name for name in heads["signed_url"]["names"] if name not in heads["healthz"]["names"]]

    def head(name: str) -> str:
        return f"{heads[name]['headers']} ({heads[name]['head_bytes']} B)"

    def grown(field: str) -> int:
        return int(heads["signed_url"][field] - heads["healthz"][field])

    # A run made before the shaped route was measured alternated it with two answers.
    others = "the other answers" if "bare_shaped" in figures else "the two answers above"
    lines = [
        f"### {SIGNED_URL_PROFILE}",
        "",
        "`GET /images/<id>/signed-url` with the fast signer and no rate limit "
        '(`BROKER_RATE_LIMIT_SIGN=""`: what the shared counters cost is the database\'s, which '
        f"bench/dbcost.py measures), {figures['signed_url']['users']} users of a small database "
        "of its own each asking for their own image in turn, a bearer token in every request; "
        f"one sync worker, its runs alternated with {others} and measured as they "
        "are. The caches keep their defaults, as in the endpoint runs: a lookup-cache entry "
        "lives 30 s (`BROKER_LOOKUP_CACHE_TTL`), so each user's image is read from MongoDB "
        "again every 30 s.",
        "",
        _row("CPU µs per request", "/bare", "/healthz", "signed URL", "more than /healthz"),
        _row("---", "---:", "---:", "---:", "---:"),
        _row("under gunicorn", *(f"{served[name]:.0f}" for name in names), f"{more:+.0f}"),
        _row("in-process (the app)", *(f"{alone[name]:.0f}" for name in names), f"{app_more:+.0f}"),
        _row(
            "gunicorn around the app (the difference)",
            *(f"{around[name]:.0f}" for name in names),
            f"{gunicorn_more:+.0f}",
        ),
        _row(
            "headers on the wire (bytes of the head)",
            *(head(name) for name in names),
            f"{grown('headers'):+d} ({grown('head_bytes'):+d} B)",
        ),
        _row(
            "bytes of the response body",
            *(heads[name]["body_bytes"] for name in names),
            f"{grown('body_bytes'):+d}",
        ),
        _row(
            "bytes of the request head",
            *(heads[name]["request_head_bytes"] for name in names),
            f"{grown('request_head_bytes'):+d}",
        ),
        "",
        "Runs under gunicorn, µs per request: signed URL "
        + ", ".join(f"{us:.0f}" for us in figures["signed_url"]["gunicorn_cpu_us_rounds"])
        + ".",
        "",
        f"Under gunicorn the signed URL costs {served['signed_url'] - served['bare']:.0f} µs more "
        f"CPU per request than /bare, so by CPU it answers "
        f"{served['bare'] / served['signed_url']:.0%} of /bare's requests/s (target "
        f"{SIGNED_URL_GOAL}%: at most {ceiling:.0f} µs, "
        + (
            f"{served['signed_url'] - ceiling:.0f} µs less than now). "
            if served["signed_url"] > ceiling
            else "within it in this measurement). "
        )
        + f"/healthz, which does nothing, takes {served['healthz'] - served['bare']:.0f} µs of "
        f"that gap (above); of the {more:.0f} µs the signed URL adds over /healthz, the app "
        f"takes {app_more:.0f} (in-process) and gunicorn {gunicorn_more:.0f} "
        f"({gunicorn_more / (more or 1):.0%}), around a request head {grown('request_head_bytes')}"
        f" B larger (the bearer token) and an answer of {grown('body_bytes')} more bytes of body "
        f"and {grown('headers')} more header{'' if grown('headers') == 1 else 's'}"
        + (f" ({', '.join(extra)})." if extra else "."),
        "",
    ]
    if "bare_shaped" in figures:  # a run made before the shaped route was measured has none
        lines += _shaped_lines(figures)
    profiles = {name: figures[name]["profile"] for name in ("healthz", "signed_url")}
    before, after = profiles["healthz"], profiles["signed_url"]
    profiled_more = after["profiled_us"] - before["profiled_us"]
    side_more = {side: after["sides_us"][side] - before["sides_us"][side] for side in WORKER_SIDES}
    lines += [
        f"cProfile of the worker as above ({after['requests']} requests of the signed URL), per "
        f"request. Of the {profiled_more:.0f} profiled µs the signed URL adds over /healthz, "
        f"gunicorn's side takes {side_more['gunicorn']:.0f} "
        f"({side_more['gunicorn'] / (profiled_more or 1):.0%}), the app's "
        f"{side_more['the app']:.0f}.",
        "",
        *_profile_table(before, after, "/healthz", "signed URL"),
        "",
        *_purpose_lines(before, after),
        "```",
        "own time by component, µs per request (/healthz -> signed URL):",
        *_component_lines(profiles, {"healthz": "/healthz", "signed_url": "signed"}),
        "functions whose own time grows most from /healthz to the signed URL (µs more per "
        "request; calls per request):",
        *_growth_lines(figures["grows_signed_url"]),
        "```",
        "",
    ]
    return lines


def _shaped_lines(figures: dict[str, Any]) -> list[str]:
    """The signed URL against the bare route of its shape: what the shape costs Flask and
    gunicorn, and the room the target leaves the broker's own work above it."""
    served = {
        name: figures[name]["gunicorn_cpu_us"]
        for name in ("bare", "healthz", "signed_url", "bare_shaped")
    }
    alone = figures["bare_shaped"]["in_process_cpu_us"]
    runs = ", ".join(f"{us:.0f}" for us in figures["bare_shaped"]["gunicorn_cpu_us_rounds"])
    body = figures["heads"]["bare_shaped"]["body_bytes"]
    ceiling = served["bare"] / (SIGNED_URL_GOAL / 100)
    room = ceiling - served["bare_shaped"]
    hooks = served["healthz"] - served["bare"]
    extra = served["bare_shaped"] - served["bare"]
    shape_cost = (
        f"cost Flask and gunicorn {extra:.0f} µs more than /bare's"
        if extra >= 0
        else "cost Flask and gunicorn no more than /bare's in this run "
        f"({served['bare_shaped']:.0f} against {served['bare']:.0f} µs, less than the spread of "
        "its runs)"
    )
    verdict = (
        f"less than /healthz's hooks alone take over /bare ({hooks:.0f} µs: the request id, "
        "the access line, the metrics, the request-head bounds, the security and CORS headers)"
        if room < hooks
        else f"while /healthz's hooks alone take {hooks:.0f} µs over /bare"
    )
    return [
        "The bare app's route of the signed URL's shape (bench/bare_app.py: the same callers, "
        f"tokens and ids, a path parameter, the bearer token required but not verified, a JSON "
        f"answer of {body} bytes with `Cache-Control: no-store`; no hooks, logs or metrics) "
        f"costs {served['bare_shaped']:.0f} µs of CPU per request under gunicorn (runs: {runs}) "
        f"and {alone:.0f} in-process: a request and an answer of that shape {shape_cost}. By "
        "CPU the "
        f"signed URL answers {served['bare_shaped'] / served['signed_url']:.0%} of the shaped "
        f"route's requests/s. The {SIGNED_URL_GOAL}% target ({ceiling:.0f} µs) leaves "
        f"{room:.0f} µs above the shaped route for everything the broker does on it "
        f"(authentication, the lookup, signing, what every request gets), {verdict}; the signed "
        f"URL spends {served['signed_url'] - served['bare_shaped']:.0f}.",
        "",
    ]


def _purpose_lines(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The app's side of /healthz and of the signed URL by what it is for, and what grows."""
    purposes = list(after["purposes_us"])
    total = sum(part["us"] for part in after["purposes_us"].values()) or 1
    grows = {
        name: after["purposes_us"][name]["us"] - before["purposes_us"][name]["us"]
        for name in purposes
    }
    lines = [
        "The app's side by what it is for, profiled µs per request: each purpose is the own time "
        "of the modules `PURPOSES` in bench/profile_worker.py names for it (authentication: "
        "broker.auth, the token cache; the image lookup: the lookup cache, broker.db; signing: "
        "broker.signing, broker.images.downloads, the signed-URL memo; the answer: "
        "broker.schemas, broker.http.payloads, json; logs and metrics: broker.observability, "
        "broker.metrics, prometheus_client; the framework: flask, werkzeug, blinker; the rest: "
        "the broker's other modules), the stdlib, C functions and libraries named nowhere there "
        "(cachetools, logging, hmac, ...) counted with their callers.",
        "",
        _row(
            "the app's side",
            "/healthz",
            "signed URL",
            "more",
            "share (signed URL)",
            "largest components (signed URL)",
        ),
        _row("---", "---:", "---:", "---:", "---:", "---"),
    ]
    for name in purposes:
        part = after["purposes_us"][name]
        lines.append(
            _row(
                name,
                f"{before['purposes_us'][name]['us']:.0f}",
                f"{part['us']:.0f}",
                f"{grows[name]:+.0f}",
                f"{part['us'] / total:.0%}",
                ", ".join(f"{component} {us:.0f}" for component, us in part["components"]),
            )
        )
    growth = sum(grows.values()) or 1
    ranked = sorted(purposes, key=lambda name: -grows[name])
    lines += [
        "",
        f"Of the {sum(grows.values()):.0f} profiled µs the app's side grows by: "
        + ", ".join(f"{name} {grows[name] / growth:.0%}" for name in ranked if grows[name] > 0)
        + ".",
        "",
    ]
    lookup = after["purposes_us"].get(IMAGE_LOOKUP)
    reads = dict(lookup["components"]).get("pymongo") if lookup else None
    if lookup and reads:
        lines += [
            f"pymongo's {reads:.0f} µs under the image lookup are the reads of expired "
            "lookup-cache entries that fell into the profiled run (each user's at most once per "
            f"30 s); the rest of the lookup takes the other {lookup['us'] - reads:.0f}.",
            "",
        ]
    return lines


def _profile_table(
    before: dict[str, Any], after: dict[str, Any], first: str, second: str
) -> list[str]:
    """Two answers' profiles side by side: calls, profiled µs, each side's, the app call's."""
    lines = [
        _row("profile, per request", first, second, "more"),
        _row("---", "---:", "---:", "---:"),
    ]
    rows = [
        ("function calls", before["calls"], after["calls"]),
        ("profiled µs", before["profiled_us"], after["profiled_us"]),
        *(
            (f"µs on {side}'s side", before["sides_us"][side], after["sides_us"][side])
            for side in WORKER_SIDES
        ),
        ("µs inside Flask's `__call__`", before["app_call_us"], after["app_call_us"]),
        (
            "of which gunicorn's start_response",
            before["start_response_us"],
            after["start_response_us"],
        ),
    ]
    for label, a, b in rows:
        lines.append(_row(label, f"{a:.0f}", f"{b:.0f}", f"{b - a:+.0f}"))
    return lines


def _component_lines(profiles: dict[str, Any], labels: dict[str, str]) -> list[str]:
    """Each side's largest components, one line per answer (``labels``: answer → its label)."""
    return [
        f"  {side:8} {label:9} "
        + ", ".join(
            f"{component} {us:.0f}" for component, us in profiles[name]["components_us"][side]
        )
        for side in WORKER_SIDES
        for name, label in labels.items()
    ]


def _growth_lines(grows: list[dict[str, Any]]) -> list[str]:
    """The functions whose own time grows most, one line each."""
    return [
        f"  {row['us_more']:+6.1f}  {row['calls'][0]:5.2f} -> {row['calls'][1]:5.2f}  "
        f"[{row['side']}] {row['function']}"
        for row in grows
    ]


def _variants_section(variants: dict[str, Any]) -> list[str]:
    renderers, worker = variants["renderers"], variants["worker"]
    lines = [
        "## 7. Variants (thumb 320x320 + medium 1280x1280, WebP q80 effort 4)",
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
