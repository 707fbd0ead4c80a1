"""Download image URLs into a class folder: concurrent, bounded, verified, resized, named by content hash, recorded.

Each URL is fetched with a per-request timeout and a size cap, written to a temp file inside the data
root, fully decoded (`images.load_image`: minimum size, decompression-bomb check), shrunk to `max_side`,
re-encoded as JPEG and renamed into `<data>/<class>/<sha256[:16]>.jpg`. Nothing that fails a check reaches
the class folder; every failure is counted by reason and the rest carry on. Kept images get a
`data/index.csv` row with their source URL and query.
"""

from __future__ import annotations

import hashlib
import io
import ipaddress
import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from PIL import Image

from .. import config
from ..progress import Event, items_event
from . import catalog
from .dataset import add_class, rel
from .images import InvalidImage, load_image
from .intake import DUPLICATE, TRASHED_BEFORE, Ledger
from .safepath import check_name

# Defaults, in one place.
MAX_WORKERS = config.DOWNLOAD_WORKERS
TIMEOUT = config.DOWNLOAD_TIMEOUT
MAX_BYTES = 15 * 1024 * 1024  # a bigger download is abandoned as "too large"
MAX_SIDE = config.DOWNLOAD_MAX_SIDE
MIN_SIDE = 64  # smaller images (icons, tracking pixels) are refused as "too small"
JPEG_QUALITY = 90
# Some image hosts refuse clients that do not look like a browser.
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
TMP_DIR = ".otter/downloads"  # inside the data root, so the final rename never crosses file systems


@dataclass
class Outcome:
    """What happened to one URL: status "kept", "duplicate" or "failed" (with `reason`)."""

    url: str
    status: str
    reason: str = ""
    detail: str = ""
    file: str = ""  # class/name when kept, or the existing copy for a duplicate


@dataclass
class DownloadResult:
    kept: list[str] = field(default_factory=list)  # class/name of each kept image
    failed: Counter = field(default_factory=Counter)  # reason -> count
    duplicates: int = 0
    outcomes: list[Outcome] = field(default_factory=list)

    def add(self, o: Outcome) -> None:
        self.outcomes.append(o)
        if o.status == "kept":
            self.kept.append(o.file)
        elif o.status == "duplicate":
            self.duplicates += 1
        else:
            self.failed[o.reason] += 1

    def summary_line(self) -> str:
        """`kept N, failed M (reason: count, …), duplicates D`."""
        n_failed = sum(self.failed.values())
        reasons = ", ".join(f"{r}: {n}" for r, n in sorted(self.failed.items(), key=lambda kv: (-kv[1], kv[0])))
        return (
            f"kept {len(self.kept)}, failed {n_failed}" + (f" ({reasons})" if reasons else "") + f", duplicates {self.duplicates}"
        )

    def to_dict(self) -> dict:
        return {
            "kept": list(self.kept),
            "failed": dict(self.failed),
            "duplicates": self.duplicates,
            "summary": self.summary_line(),
            "outcomes": [o.__dict__ for o in self.outcomes],
        }


class _Failed(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason, self.detail = reason, detail


def parse_url_lines(text: str) -> list[str]:
    """URLs from text, one per line; blank lines and `#` comments are skipped."""
    urls = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            urls.append(line)
    return urls


def read_url_file(path: os.PathLike | str) -> list[str]:
    """URLs from a text file, one per line; blank lines and `#` comments are skipped."""
    return parse_url_lines(Path(path).read_text(encoding="utf-8", errors="replace"))


def _non_public(ip_text: str) -> bool:
    ip = ipaddress.ip_address(str(ip_text).split("%")[0])
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def refuse_private(request: httpx.Request) -> None:
    """Refuse requests (redirects included) to loopback, private, link-local and other non-public addresses,
    so a public app cannot be steered at its own network or a cloud metadata service.

    Checked twice: the host's addresses before connecting, and the address actually connected to, before a
    byte is sent (httpx's documented `trace` extension reports each new connection). The second check
    defeats DNS rebinding, where a host resolves to a public address for the check and a private one for
    the connection. A connection to a proxy (another host than the URL's) is not checked: the proxy
    resolves the URL's host, which the first check has already vetted."""
    host = request.url.host
    request.extensions["trace"] = PeerCheck(request.url.raw_host.decode("ascii"))
    try:
        infos = socket.getaddrinfo(host, request.url.port or 443, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return  # the request itself fails as a connection error (or reaches the second check)
    if any(_non_public(sockaddr[0]) for *_, sockaddr in infos):
        raise _Failed("blocked address", f"{host} is a private or local address")


class PeerCheck:
    """`trace` callback for one request: close and refuse a new connection to `host` that reached a
    non-public address."""

    def __init__(self, host: str) -> None:
        self.host = host  # as it goes on the wire (IDNA-encoded), which is what the connection reports
        self.connecting = ""

    def __call__(self, event: str, info: dict) -> None:
        if event == "connection.connect_tcp.started":
            self.connecting = info.get("host", "")
        elif event == "connection.connect_tcp.complete" and self.connecting == self.host:
            stream = info["return_value"]
            peer = stream.get_extra_info("server_addr")
            if peer and _non_public(peer[0]):
                stream.close()
                raise _Failed("blocked address", f"{self.host} connected to the private or local address {peer[0]}")


def make_client(max_workers: int = MAX_WORKERS, timeout: float = TIMEOUT, allow_private: bool = True) -> httpx.Client:
    """One pooled HTTP client for all workers: browser-like user agent, redirects followed; with
    `allow_private=False`, requests to non-public addresses fail as "blocked address"."""
    return httpx.Client(
        follow_redirects=True,
        timeout=httpx.Timeout(timeout),
        headers={"User-Agent": USER_AGENT, "Accept": "image/avif,image/webp,image/png,image/*;q=0.9,*/*;q=0.5"},
        limits=httpx.Limits(max_connections=max_workers, max_keepalive_connections=max_workers),
        event_hooks={"request": [] if allow_private else [refuse_private]},
    )


def _fetch(client: httpx.Client, url: str, timeout: float, max_bytes: int) -> bytes:
    if not url.lower().startswith(("http://", "https://")):
        raise _Failed("bad url", f"not an http(s) URL: {url[:80]!r}")
    deadline = time.monotonic() + 4 * timeout
    try:
        with client.stream("GET", url) as resp:
            if resp.status_code != 200:
                raise _Failed(f"http {resp.status_code}")
            declared = resp.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise _Failed("too large", f"{int(declared)} bytes, limit {max_bytes}")
            buf = bytearray()
            for chunk in resp.iter_bytes(64 * 1024):
                buf += chunk
                if len(buf) > max_bytes:
                    raise _Failed("too large", f"more than {max_bytes} bytes")
                if time.monotonic() > deadline:
                    raise _Failed("timeout", f"download took longer than {4 * timeout:g} s")
            return bytes(buf)
    except httpx.TimeoutException as ex:
        raise _Failed("timeout", type(ex).__name__) from ex
    except httpx.TooManyRedirects as ex:
        raise _Failed("too many redirects") from ex
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as ex:
        raise _Failed("bad url", str(ex)) from ex
    except httpx.HTTPError as ex:
        raise _Failed("connection error", f"{type(ex).__name__}: {ex}") from ex


def _prepare(data: bytes, tmp: Path, max_side: int, min_side: int) -> tuple[bytes, int, int]:
    """Verify downloaded bytes (written to `tmp` and fully decoded) and return the JPEG to keep, with its size."""
    tmp.write_bytes(data)
    try:
        im = load_image(tmp, min_side=min_side)
    except InvalidImage as ex:
        raise _Failed(ex.reason, ex.detail) from ex
    if max(im.size) > max_side:
        im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    im.save(out, "JPEG", quality=JPEG_QUALITY)
    return out.getvalue(), im.width, im.height


ProgressFn = Callable[[Event], None]  # a "download" Event (otter.progress) after each URL


def _url_and_query(urls: Iterable[str | Mapping], query: str | None) -> list[tuple[str, str]]:
    """(url, query) of each plain URL (with `query`) or search hit (a mapping with "url" and optionally "query")."""
    items = []
    for u in urls:
        if isinstance(u, Mapping):
            items.append((str(u.get("url") or "").strip(), str(u.get("query") or query or "")))
        else:
            items.append((str(u).strip(), query or ""))
    return items


@dataclass
class _Keeper:
    """Writes a downloaded image into its class folder, unless the data set holds it already or trashed it before
    (the intake `Ledger`: same SHA-256 before or after resizing)."""

    root: Path
    cls: str
    class_dir: Path
    tmp_dir: Path
    ledger: Ledger

    def keep(self, url: str, q: str, data: bytes, final: bytes, w: int, h: int) -> Outcome:
        sha = hashlib.sha256(final).hexdigest()
        # The raw hash also catches a byte-identical copy that was added by hand or uploaded.
        hashes = (sha, hashlib.sha256(data).hexdigest())
        with self.ledger.lock:
            seen = self.ledger.claim(hashes)
            if seen is not None and seen[0] == DUPLICATE:
                return Outcome(url, "duplicate", "duplicate", file=seen[1])
            if seen is not None:
                return Outcome(url, "failed", TRASHED_BEFORE, "this image was moved to the trash before")
            dest = self.class_dir / f"{sha[:16]}.jpg"
            tmp = self.tmp_dir / f"{uuid.uuid4().hex}.jpg"
            tmp.write_bytes(final)
            os.replace(tmp, dest)
            file = rel(self.root, dest)
            row = {"file": file, "class": self.cls, "source_url": url, "query": q, "sha256": sha, "width": w, "height": h}
            self.ledger.add(sha, row | {"added": catalog.now(), "status": "kept"})
            return Outcome(url, "kept", file=file)


def download_images(
    urls: Iterable[str | Mapping],
    class_dir: os.PathLike | str,
    *,
    query: str | None = None,
    max_workers: int = MAX_WORKERS,
    timeout: float = TIMEOUT,
    max_bytes: int = MAX_BYTES,
    max_side: int = MAX_SIDE,
    min_side: int = MIN_SIDE,
    progress: ProgressFn | None = None,
    allow_private: bool = True,
    client: httpx.Client | None = None,
) -> DownloadResult:
    """Download `urls` into `class_dir` (`<data root>/<class>`, created if needed); returns a `DownloadResult`.

    Each item is a URL or a search hit (a mapping with "url" and optionally "query"); `query` is recorded
    for plain URLs. An image already present in any class (same SHA-256 before or after resizing) counts as
    a duplicate, one trashed before fails as "trashed before". `progress` gets a "download" Event (done of total,
    and the URL's `outcome`) after each URL, in the calling thread. A public app passes `allow_private=False` (see `make_client`)."""
    class_dir = Path(class_dir)
    start = time.monotonic()
    root = class_dir.parent
    cls = check_name(class_dir.name, "class name")
    add_class(root, cls)
    items = _url_and_query(urls, query)
    result = DownloadResult()
    if not items:
        return result

    tmp_dir = root / TMP_DIR
    tmp_dir.mkdir(parents=True, exist_ok=True)
    keeper = _Keeper(root, cls, class_dir, tmp_dir, Ledger(root))

    def one(url: str, q: str) -> Outcome:
        tmp = tmp_dir / f"{uuid.uuid4().hex}.part"
        try:
            data = _fetch(http, url, timeout, max_bytes)
            final, w, h = _prepare(data, tmp, max_side, min_side)
            return keeper.keep(url, q, data, final, w, h)
        except _Failed as ex:
            return Outcome(url, "failed", ex.reason, ex.detail)
        except OSError as ex:  # disk full, permissions: report it, keep going with the rest
            return Outcome(url, "failed", "write error", str(ex))
        # Nothing broader: a bad file or answer is a _Failed above, so anything else is a bug, and it stops the run
        # with its traceback instead of passing for one URL's "error".
        finally:
            tmp.unlink(missing_ok=True)

    http = client or make_client(max_workers, timeout, allow_private)
    try:
        with ThreadPoolExecutor(max_workers=max(1, max_workers), thread_name_prefix="otter-dl") as pool:
            futures = [pool.submit(one, url, q) for url, q in items]
            for done, fut in enumerate(as_completed(futures), start=1):
                outcome = fut.result()
                result.add(outcome)
                if progress is not None:
                    progress(items_event("download", done, len(items), start, outcome=outcome))
    finally:
        with keeper.ledger.lock:
            keeper.ledger.flush()
        if client is None:
            http.close()
    return result
