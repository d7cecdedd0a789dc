"""``make help``: every target listed with one line saying what it does; ``make`` alone is help."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def make(*args: str) -> str:
    # Not the outer make's flags (a jobserver, -n, a level): this make runs on its own.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    done = subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout


def phony_targets() -> list[str]:
    text = (REPO / "Makefile").read_text()
    return [name for line in re.findall(r"^\.PHONY:(.*)$", text, re.M) for name in line.split()]


def test_help_lists_every_target_with_one_line() -> None:
    lines = make("help").splitlines()
    assert lines[0] == "Targets (make <target>):"
    listed = {}
    for line in lines[1:]:
        match = re.fullmatch(r"  (\S+) +(\S.*)", line)
        assert match, f"not a target line: {line!r}"
        listed[match.group(1)] = match.group(2)
    # Every target a developer may type is documented (a '## ' line right above it).
    assert sorted(listed) == sorted(phony_targets())
    assert {"run", "test", "lint", "help"} <= listed.keys()
    assert "embedded MongoDB and S3" in listed["run"]


def test_make_alone_only_prints_the_help() -> None:
    assert make() == make("help")
    # What it would run: the help recipe only (no virtualenv, no install, no server).
    dry_run = make("-n")
    assert "awk" in dry_run
    assert not re.search(r"venv|pip|python|pytest|broker\.demo", dry_run)
