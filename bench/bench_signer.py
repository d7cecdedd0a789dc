"""Micro-benchmark: presigned S3 URLs per second, fast signer vs boto3 vs the bare floor.

Usage: python bench/bench_signer.py [--iterations N] [--rounds R] [--json PATH]

The workload is half GETs and half PUTs signing Content-Type and Content-Length,
every one for a different key.  Prints microseconds per URL (median and best of R
rounds of N calls, timed with time.perf_counter_ns; the rounds of the three
contenders are interleaved so that background load hits them alike) for

* fast   -- broker.signing.SigV4Presigner.presign at the current time;
* boto3  -- client.generate_presigned_url for the same requests;
* floor  -- the irreducible work for the same URLs: format the canonical request
  from precomputed pieces, one SHA-256, format the string to sign, one
  HMAC-SHA256 with a cached key (with the signer's precomputed-pad technique,
  the fastest HMAC the standard library allows) and format the URL;

plus the ratios fast/boto3 and fast/floor (from the medians), and fast/floor
for GETs and PUTs separately.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from broker.signing import Credentials, SigV4Presigner
from broker.signing_reference import Boto3Presigner
from tests.support.botocore_reference import make_s3_client

ENDPOINT = "https://s3.example.com"
HOST = "s3.example.com"
REGION = "eu-west-1"
CREDS = Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", None)
BUCKET = "images"
PUT_HEADERS = {"Content-Type": "image/jpeg", "Content-Length": "482113"}

Request = tuple[str, str, dict[str, str]]


def make_requests(count: int) -> list[Request]:
    """Half GETs, half PUTs with Content-Type/Content-Length, all with distinct keys."""
    requests: list[Request] = []
    for i in range(count):
        key = f"uploads/2024/05/{uuid.UUID(int=i * 7919 + 1)}.jpg"
        requests.append(("GET", key, {}) if i % 2 else ("PUT", key, PUT_HEADERS))
    return requests


def time_per_call_us(func: Callable[[Request], object], requests: list[Request]) -> float:
    """Run ``func`` over ``requests`` once and return the mean microseconds per call."""
    start = time.perf_counter_ns()
    for request in requests:
        func(request)
    return (time.perf_counter_ns() - start) / len(requests) / 1000


Contender = tuple[Callable[[Request], object], list[Request]]


def measure(contenders: dict[str, Contender], rounds: int) -> dict[str, dict[str, float]]:
    """Median and best microseconds per call of each contender, rounds interleaved."""
    for func, requests in contenders.values():  # warm-up
        time_per_call_us(func, requests[: max(1, len(requests) // 10)])
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, (func, requests) in contenders.items():
            samples[name].append(time_per_call_us(func, requests))
    return {
        name: {"median_us": statistics.median(values), "best_us": min(values)}
        for name, values in samples.items()
    }


def floor_signer(now: datetime) -> Callable[[Request], str]:
    """The bare minimum for the same URLs: string building, one SHA-256, one HMAC.

    Everything that does not depend on the request is precomputed, including
    the signing key and its HMAC pads; per call it only formats the canonical
    request (with the signed header lines for PUT), hashes it, formats the
    string to sign, HMACs it and formats the URL.  It knows the exact shape of
    the benchmark's requests, so there is no validation, quoting or sorting.
    """
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    scope = f"{amz_date[:8]}/{REGION}/s3/aws4_request"
    key = f"AWS4{CREDS.secret_key}".encode()
    for part in (amz_date[:8], REGION, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    padded = key.ljust(64, b"\0")
    inner_pad = hashlib.sha256(bytes(b ^ 0x36 for b in padded))
    outer_pad = hashlib.sha256(bytes(b ^ 0x5C for b in padded))
    prefix = f"{ENDPOINT}/{BUCKET}/"
    credential = f"{CREDS.access_key}/{scope}".replace("/", "%2F")
    auth = (
        f"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={credential}"
        f"&X-Amz-Date={amz_date}&X-Amz-Expires=900&X-Amz-SignedHeaders="
    )
    get_query = f"{auth}host"
    put_query = f"{auth}content-length%3Bcontent-type%3Bhost"
    sha256 = hashlib.sha256

    def sign(request: Request) -> str:
        _, object_key, headers = request
        if headers:
            query = put_query
            canonical = (
                f"PUT\n/{BUCKET}/{object_key}\n{query}\n"
                f"content-length:{headers['Content-Length']}\n"
                f"content-type:{headers['Content-Type']}\nhost:{HOST}\n\n"
                "content-length;content-type;host\nUNSIGNED-PAYLOAD"
            )
        else:
            query = get_query
            canonical = (
                f"GET\n/{BUCKET}/{object_key}\n{query}\nhost:{HOST}\n\nhost\nUNSIGNED-PAYLOAD"
            )
        digest = sha256(canonical.encode()).hexdigest()
        to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{digest}"
        inner = inner_pad.copy()
        inner.update(to_sign.encode())
        outer = outer_pad.copy()
        outer.update(inner.digest())
        return f"{prefix}{object_key}?{query}&X-Amz-Signature={outer.hexdigest()}"

    return sign


def main() -> None:
    """Run the benchmark and print (and optionally save) the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--iterations", type=int, default=20000, help="calls per round (fast, floor)"
    )
    parser.add_argument(
        "--boto3-iterations", type=int, default=2000, help="calls per round (boto3)"
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", type=Path, help="write the figures as JSON to this path")
    args = parser.parse_args()

    signer = SigV4Presigner(endpoint_url=ENDPOINT, region=REGION, credentials=lambda: CREDS)
    boto3_signer = Boto3Presigner(
        make_s3_client(
            ENDPOINT,
            REGION,
            aws_access_key_id=CREDS.access_key,
            aws_secret_access_key=CREDS.secret_key,
        )
    )

    def fast(request: Request) -> str:
        method, key, headers = request
        return signer.presign(method, BUCKET, key, expires_in=900, headers=headers)

    def reference(request: Request) -> str:
        method, key, headers = request
        return boto3_signer.presign(method, BUCKET, key, expires_in=900, headers=headers)

    requests = make_requests(args.iterations)
    # The floor must compute the very same URLs, or it is not a floor.
    frozen = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    floor = floor_signer(frozen)
    for method, key, headers in requests[:2]:
        expected = signer.presign(method, BUCKET, key, expires_in=900, headers=headers, now=frozen)
        if floor((method, key, headers)) != expected:
            raise SystemExit(f"floor and fast signer disagree for {method} {key}")
    gets = [request for request in requests if request[0] == "GET"]
    puts = [request for request in requests if request[0] == "PUT"]
    results = measure(
        {
            "fast": (fast, requests),
            "boto3": (reference, requests[: args.boto3_iterations]),
            "floor": (floor, requests),
        },
        args.rounds,
    )
    by_method = measure(
        {"fast GET": (fast, gets), "floor GET": (floor, gets)}, args.rounds
    ) | measure({"fast PUT": (fast, puts), "floor PUT": (floor, puts)}, args.rounds)
    fast_us = results["fast"]["median_us"]
    report = {
        "unit": "microseconds per presigned URL",
        "iterations": args.iterations,
        "boto3_iterations": args.boto3_iterations,
        "rounds": args.rounds,
        "python": sys.version.split()[0],
        "results": results,
        "ratio_fast_over_boto3": fast_us / results["boto3"]["median_us"],
        "ratio_fast_over_floor": fast_us / results["floor"]["median_us"],
        "by_method": by_method,
        "ratio_fast_over_floor_by_method": {
            method: by_method[f"fast {method}"]["median_us"]
            / by_method[f"floor {method}"]["median_us"]
            for method in ("GET", "PUT")
        },
    }
    for name, figures in results.items():
        median, best = figures["median_us"], figures["best_us"]
        print(f"{name:6s} {median:9.2f} us/URL (median) {best:9.2f} (best)")
    print(
        f"fast/boto3 = {report['ratio_fast_over_boto3']:.4f} "
        f"({1 / report['ratio_fast_over_boto3']:.0f}x faster)"
    )
    print(f"fast/floor = {report['ratio_fast_over_floor']:.2f}", end="")
    for method, ratio in report["ratio_fast_over_floor_by_method"].items():
        print(f"  ({method} only: {ratio:.2f})", end="")
    print()
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
