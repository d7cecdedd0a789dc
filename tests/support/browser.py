"""The admin UI in headless Chromium: the demo it runs against, a recorded tab, browser-made files.

``DemoBroker`` is the running demo (``make run``'s broker) with clients for its API and bucket;
``UI`` is one tab and what went wrong in it (console errors, page errors, CSP violations,
dialogs); ``drop_files`` and ``canvas_jpeg`` make files the way a browser does.
"""

from __future__ import annotations

import base64
import contextlib
import os
import queue
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import requests
from botocore.config import Config
from playwright.sync_api import Page, Request, ViewportSize

from broker.devservers import free_port
from tests.support import REPO
from tests.support.demo import start_demo
from tests.support.signals import ignores_sigint
from tests.support.tokens import JWT_SECRET, bearer
from tests.support.upload import HttpApi, upload

ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = Path(os.environ.get("BROKER_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
LAPTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}
START_TIMEOUT_S = 60
BUCKET = "images"  # the demo's (BROKER_S3_BUCKET's default)
TOKEN_KEY = "broker.admin.token"  # where the admin UI (session.js) keeps the token (sessionStorage)


@dataclass
class DemoBroker:
    """The running demo: where it is, its admin token, and clients for its API and bucket."""

    base_url: str  # as printed: http://localhost:<port>
    admin_url: str  # …/admin/#token=…
    token: str
    s3_endpoint: str
    process: subprocess.Popen[str]
    log_path: Path

    def api(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> Any:
        """Call the API with the admin token (or ``token``)."""
        headers = {"Authorization": f"Bearer {token or self.token}", **kwargs.pop("headers", {})}
        return requests.request(method, self.base_url + path, headers=headers, timeout=10, **kwargs)

    def all_images(self) -> list[dict[str, Any]]:
        """Every image, as the admin sees them."""
        images: list[dict[str, Any]] = []
        cursor = None
        while True:
            params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
            response = self.api("GET", "/images", params=params)
            assert response.status_code == 200, response.text
            images += response.json()["images"]
            cursor = response.json()["next_cursor"]
            if not cursor:
                return images

    def bucket_keys(self) -> list[str]:
        """Every key in the bucket, asked of S3 itself."""
        s3 = boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            aws_access_key_id="demo",
            aws_secret_access_key="demo",
            region_name="us-east-1",
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )
        listing = s3.list_objects_v2(Bucket=BUCKET)
        return sorted(item["Key"] for item in listing.get("Contents", []))

    def upload(
        self, data: bytes, filename: str, filetype: str, token: str | None = None, **extra: Any
    ) -> dict[str, Any]:
        """Upload through the API (the one upload flow, over HTTP); the image."""
        api = HttpApi(self.base_url, timeout=10)
        headers = bearer(token or self.token)
        uploaded = upload(api, data, headers=headers, filename=filename, filetype=filetype, **extra)
        return uploaded.image

    def delete_everything(self) -> None:
        """Delete every image (through the API, so the bucket and MongoDB stay in step)."""
        for image in self.all_images():
            response = self.api("DELETE", f"/images/{image['id']}")
            assert response.status_code == 204, response.text


def read_announcement(process: subprocess.Popen[str], log_path: Path) -> dict[str, str]:
    """What the demo prints once its services are up (see broker/demo.py ``_announce``)."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:  # keeps draining after the announcement
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, name="demo-stdout", daemon=True).start()
    found: dict[str, str] = {}
    deadline = time.monotonic() + START_TIMEOUT_S
    while not {"token", "s3_endpoint"} <= found.keys():
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            line = None
        if line is None:
            tail = log_path.read_text(errors="replace")[-3000:] if log_path.exists() else ""
            raise RuntimeError(f"the demo did not announce itself in {START_TIMEOUT_S}s:\n{tail}")
        if match := re.search(r"Admin UI\s+(\S+/admin/#token=(\S+))", line):
            found["admin_url"], found["token"] = match.group(1), match.group(2)
        elif match := re.search(r"S3\s+embedded\s+(http\S+)", line):
            found["s3_endpoint"] = match.group(1)
    return found


def stop_demo(process: subprocess.Popen[str]) -> None:
    """Stop the demo and what it started (its own process group, from ``start_new_session``).

    Ctrl-C (SIGINT) lets the demo stop its MongoDB process and S3 server itself; when SIGINT is
    ignored, or the demo does not stop, the group gets SIGTERM, then SIGKILL.
    """
    if process.poll() is None and not ignores_sigint(process.pid):
        process.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=15)
    for group_signal in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, group_signal)  # the demo's group: only what this fixture started
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            continue
        time.sleep(0.5)  # its children get the same signal; give them a moment to go


# Records CSP violations in the page (they are also console errors; this says which directive).
CSP_PROBE = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(event.violatedDirective + " " + event.blockedURI);
});
"""


@dataclass
class UI:
    """One browser tab and what it saw."""

    page: Page
    demo: DemoBroker
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)

    def sign_in(self) -> None:
        """Open the link ``make run`` prints (token in the fragment) and wait for the library."""
        self.page.goto(self.demo.admin_url)
        self.page.locator("#app-view").wait_for(state="visible")
        self.page.locator("#library[aria-busy]").wait_for(state="detached")

    def wait_for_thumbnails(self, count: int) -> None:
        """Until ``count`` thumbnails are shown and every one of them has loaded."""
        self.page.wait_for_function(
            """(count) => {
                const images = [...document.querySelectorAll("#grid img")];
                return images.length === count
                    && images.every((img) => img.complete && img.naturalWidth > 0);
            }""",
            arg=count,
        )

    def csp_violations(self) -> list[str]:
        violations: list[str] = self.page.evaluate("() => window.__cspViolations || []")
        return violations

    def assert_clean(self) -> None:
        """No console error, page error, CSP violation or dialog happened."""
        assert self.console_errors == []
        assert self.page_errors == []
        assert self.csp_violations() == []
        assert self.dialogs == []

    def screenshot(self, name: str, *, full_page: bool = True) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / name
        self.page.screenshot(path=str(path), full_page=full_page, animations="disabled")
        return path


def drop_files(page: Page, selector: str, files: list[dict[str, Any]]) -> None:
    """Drop files on an element the way a browser does (dragenter, dragover, drop)."""
    payload = [
        {"name": f["name"], "type": f["mimeType"], "data": base64.b64encode(f["buffer"]).decode()}
        for f in files
    ]
    page.evaluate(
        """([selector, files]) => {
            const transfer = new DataTransfer();
            for (const f of files) {
                const bytes = Uint8Array.from(atob(f.data), (c) => c.charCodeAt(0));
                transfer.items.add(new File([bytes], f.name, { type: f.type }));
            }
            const target = document.querySelector(selector);
            for (const type of ["dragenter", "dragover", "drop"]) {
                target.dispatchEvent(new DragEvent(type, {
                    bubbles: true, cancelable: true, dataTransfer: transfer,
                }));
            }
        }""",
        [selector, payload],
    )


def canvas_jpeg(page: Page, width: int, height: int) -> bytes:
    """A real JPEG, encoded by the browser's own canvas (a lake under mountains)."""
    data: str = page.evaluate(
        """async ([width, height]) => {
            const canvas = document.createElement("canvas");
            canvas.width = width;
            canvas.height = height;
            const g = canvas.getContext("2d");
            const sky = g.createLinearGradient(0, 0, 0, height);
            sky.addColorStop(0, "#8ec5fc");
            sky.addColorStop(1, "#e0f2fe");
            g.fillStyle = sky;
            g.fillRect(0, 0, width, height);
            g.fillStyle = "#475569";
            g.beginPath();
            g.moveTo(0, height * 0.7);
            g.lineTo(width * 0.3, height * 0.25);
            g.lineTo(width * 0.55, height * 0.6);
            g.lineTo(width * 0.75, height * 0.35);
            g.lineTo(width, height * 0.7);
            g.fill();
            g.fillStyle = "#0ea5e9";
            g.fillRect(0, height * 0.7, width, height * 0.3);
            const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.9));
            const bytes = new Uint8Array(await blob.arrayBuffer());
            let binary = "";
            for (const byte of bytes) binary += String.fromCharCode(byte);
            return btoa(binary);
        }""",
        [width, height],
    )
    return base64.b64decode(data)


@contextlib.contextmanager
def running_demo(state: Path, **settings: str) -> Iterator[DemoBroker]:
    """``make run``'s broker (embedded MongoDB and S3) on a free port, its state in ``state``."""
    port = free_port()
    log_path = state / "broker.log"
    process = start_demo(
        port,
        state,
        log_path,
        # The demo would generate a secret; a known one lets the tests mint other users' tokens.
        BROKER_JWT_SECRET=JWT_SECRET,
        BROKER_DEMO_SEED="0",  # every test starts from an empty library
        **settings,
    )
    try:
        found = read_announcement(process, log_path)
        admin_url = found["admin_url"]
        base_url = admin_url.split("/admin/", 1)[0]
        broker = DemoBroker(
            base_url=base_url,
            admin_url=admin_url,
            token=found["token"],
            s3_endpoint=found["s3_endpoint"],
            process=process,
            log_path=log_path,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:  # it announces itself just before it starts serving
            try:
                if requests.get(base_url + "/healthz", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the demo is not serving: {log_path.read_text()[-3000:]}")
            time.sleep(0.1)
        yield broker
    finally:
        stop_demo(process)
        if process.stdout is not None:
            process.stdout.close()
