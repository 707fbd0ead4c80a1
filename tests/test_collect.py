"""Image collection: search (with a fake backend), the downloader against a real HTTP server on 127.0.0.1,
provenance rows, and the `scrape` / `download` commands."""

from __future__ import annotations

import functools
import hashlib
import io
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from ddgs.exceptions import DDGSException
from PIL import Image
from servers import free_port

from conftest import made_photos
from otter import cli
from otter.data import manifest, scrape
from otter.data.download import download_images, read_url_file
from otter.data.scrape import SearchError, queries_for_class, search_images, search_many

SLOW_SECONDS = 2.5
TIMEOUT = 1.0
MAX_BYTES = 1_000_000
MAX_SIDE = 128


@functools.cache
def _png(size: tuple[int, int], colour=(40, 90, 160)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


class _Site:
    """Routes of the local test server: path -> (status, content type, body, delay s, redirect target)."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, str, bytes, float, str]] = {}
        self.base = ""

    def add(self, path: str, body: bytes = b"", ctype: str = "image/jpeg", status: int = 200, delay: float = 0.0, to: str = ""):
        self.routes[path] = (status, ctype, body, delay, to)
        return self.base + path


@pytest.fixture(scope="module")
def site():
    s = _Site()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            status, ctype, body, delay, to = s.routes.get(self.path, (404, "text/html", b"<h1>not found</h1>", 0.0, ""))
            if delay:
                time.sleep(delay)
            try:
                self.send_response(status)
                if to:
                    self.send_header("Location", to)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (the slow URL): expected

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    s.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield s
    server.shutdown()
    server.server_close()


@pytest.fixture
def mixed_urls(site):
    """Five good photos (one behind a redirect) and one of each kind of failure, plus two duplicates."""
    photos = [p.read_bytes() for p in made_photos("sea", 6)]
    good = [site.add(f"/good/{i}.jpg", b) for i, b in enumerate(photos[:4])]
    site.add("/good/moved.jpg", photos[4])
    good.append(site.add("/redirect.jpg", status=302, to=site.base + "/good/moved.jpg"))
    bad = {
        "http 404": site.base + "/missing.jpg",
        "timeout": site.add("/slow.jpg", photos[5], delay=SLOW_SECONDS),
        "not an image": site.add("/page.jpg", b"<!doctype html><html><body>a gallery</body></html>", ctype="image/jpeg"),
        "broken image": site.add("/truncated.jpg", photos[1][: len(photos[1]) // 3]),
        "too small": site.add("/pixel.png", _png((1, 1)), ctype="image/png"),
        "too large": site.add("/huge.jpg", bytes(MAX_BYTES + 1)),
        # 8000 x 6000 of one colour: a small file that would decode to 48 megapixels
        "bomb": site.add("/bomb.png", _png((8000, 6000)), ctype="image/png"),
    }
    dup = site.add("/copy-of-0.jpg", photos[0])
    return good, bad, dup


def _download(urls, class_dir, **kw):
    kw = {"timeout": TIMEOUT, "max_bytes": MAX_BYTES, "max_side": MAX_SIDE, "min_side": 16, "max_workers": 4} | kw
    return download_images(urls, class_dir, **kw)


def test_download_keeps_exactly_the_good_images_and_counts_each_failure(tmp_path, mixed_urls):
    good, bad, dup = mixed_urls
    data = tmp_path / "data"
    urls = good + list(bad.values()) + [dup]
    seen = []
    result = _download(urls, data / "sea", query="sea otter", progress=lambda e: seen.append((e.done, e.total, e.outcome)))

    assert len(result.kept) == len(good) == 5
    assert dict(result.failed) == {
        "http 404": 1,
        "timeout": 1,
        "not an image": 1,
        "broken image": 1,
        "too small": 1,
        "too large": 2,
    }
    assert result.duplicates == 1
    assert result.summary_line() == (
        "kept 5, failed 7 (too large: 2, broken image: 1, http 404: 1, not an image: 1, timeout: 1, too small: 1), duplicates 1"
    )
    assert [d for d, _, _ in seen] == list(range(1, len(urls) + 1)) and {t for _, t, _ in seen} == {len(urls)}
    # The first photo is served twice; whichever copy arrives first is kept.
    kept_urls = {o.url for o in result.outcomes if o.status == "kept"}
    assert set(good[1:]) <= kept_urls <= set(good) | {dup} and len(kept_urls & {good[0], dup}) == 1

    # Only the kept files are in the class folder: hash-named, shrunk to MAX_SIDE, decodable; no temp files left.
    files = sorted((data / "sea").iterdir())
    assert sorted(f"sea/{f.name}" for f in files) == sorted(result.kept)
    for f in files:
        digest = hashlib.sha256(f.read_bytes()).hexdigest()
        assert f.name == f"{digest[:16]}.jpg"
        with Image.open(f) as im:
            im.load()
            assert max(im.size) <= MAX_SIDE
    assert not list((data / ".otter" / "downloads").iterdir())

    # Provenance: a manifest row per kept file, with its source URL, query and hash.
    df = manifest.read(data)
    assert sorted(df["file"]) == sorted(result.kept)
    for row in df.itertuples():
        path = data / row.file
        assert row.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
        assert row.source_url in kept_urls and row.query == "sea otter" and row.status == "kept"
        with Image.open(path) as im:
            assert (int(row.width), int(row.height)) == im.size


def test_a_second_download_finds_only_duplicates_even_in_another_class(tmp_path, mixed_urls, monkeypatch):
    from otter.data.intake import Ledger

    monkeypatch.setattr(Ledger, "FLUSH_EVERY", 2)  # manifest rows are written in batches: cover a partial one
    good, _, _ = mixed_urls
    data = tmp_path / "data"
    first = _download(good, data / "sea")
    assert len(first.kept) == 5
    again = _download(good, data / "river")
    assert again.kept == [] and again.duplicates == 5
    assert not list((data / "river").iterdir())
    assert len(manifest.read(data)) == 5


def test_an_image_put_in_a_folder_by_hand_counts_as_a_duplicate(tmp_path, site):
    photo = made_photos("river", 1)[0]
    data = tmp_path / "data"
    (data / "river").mkdir(parents=True)
    (data / "river" / "mine.jpg").write_bytes(photo.read_bytes())
    url = site.add("/hand.jpg", photo.read_bytes())
    result = _download([url], data / "sea")
    assert result.duplicates == 1 and result.kept == []
    assert result.outcomes[0].file == "river/mine.jpg"


def test_a_trashed_image_is_not_downloaded_again(tmp_path, site):
    from otter.data.dataset import move_to_trash

    url = site.add("/trash-me.jpg", made_photos("river", 2)[1].read_bytes())
    data = tmp_path / "data"
    kept = _download([url], data / "river").kept
    move_to_trash(data, kept[0])
    result = _download([url], data / "river")
    assert result.kept == [] and dict(result.failed) == {"trashed before": 1}


def test_url_file_skips_blank_lines_and_comments(tmp_path):
    f = tmp_path / "urls.txt"
    f.write_text("# sea otters\nhttp://a/1.jpg\n\n   \n  http://a/2.jpg#frag  \n#http://a/3.jpg\n")
    assert read_url_file(f) == ["http://a/1.jpg", "http://a/2.jpg#frag"]


# ------------------------------------------------------------------------------------------- search


def _hit(url: str, i: int) -> dict:
    """A result in ddgs's images format."""
    return {
        "title": f"otter {i}",
        "image": url,
        "thumbnail": url,
        "url": f"https://example.org/p{i}",
        "width": 500,
        "height": "333",
    }


class FakeSearch:
    """A search backend serving fixed hits; fails with DDGSException for the first `fail` calls."""

    def __init__(self, urls: list[str], fail: int = 0) -> None:
        self.urls, self.fail, self.calls = urls, fail, []

    def __call__(self, query, *, max_results, region, safesearch, page):
        self.calls.append({"query": query, "max_results": max_results, "safesearch": safesearch, "page": page})
        if len(self.calls) <= self.fail:
            raise DDGSException("No results found.")
        start = (page - 1) * scrape.PAGE_SIZE  # like DuckDuckGo: a page is a fixed offset
        return [_hit(u, i) for i, u in enumerate(self.urls[start : start + max_results], start=start)]


def test_search_images_normalises_hits_and_drops_repeats():
    fake = FakeSearch(["http://x/a.jpg", "http://x/b.jpg", "http://x/a.jpg", "data:image/png;base64,xx"])
    hits = search_images("sea otter", 10, backend=fake)
    assert [h["url"] for h in hits] == ["http://x/a.jpg", "http://x/b.jpg"]
    assert hits[0] == {
        "url": "http://x/a.jpg",
        "thumbnail": "http://x/a.jpg",
        "title": "otter 0",
        "width": 500,
        "height": 333,
        "source_page": "https://example.org/p0",
        "query": "sea otter",
    }
    assert fake.calls[0]["safesearch"] == "moderate"


def test_search_images_pages_until_enough(monkeypatch):
    monkeypatch.setattr(scrape, "PAGE_SIZE", 3)
    fake = FakeSearch([f"http://x/{i}.jpg" for i in range(10)])
    hits = search_images("otter", 7, backend=fake)
    assert [h["url"] for h in hits] == [f"http://x/{i}.jpg" for i in range(7)]
    assert [c["page"] for c in fake.calls] == [1, 2, 3]


def test_rate_limit_is_retried_with_backoff():
    waits = []
    fake = FakeSearch(["http://x/a.jpg"], fail=2)
    hits = search_images("otter", 5, backend=fake, retries=3, sleep=waits.append, backoff=1.0)
    assert len(hits) == 1 and len(fake.calls) == 3 and waits == [1.0, 2.0]


def test_persistent_rate_limit_is_reported_clearly():
    waits = []
    fake = FakeSearch(["http://x/a.jpg"], fail=99)
    with pytest.raises(SearchError, match=r"failed after 4 tries .*rate-limiting: wait a minute"):
        search_images("otter", 5, backend=fake, retries=3, sleep=waits.append, backoff=0.5)
    assert len(fake.calls) == 4 and waits == [0.5, 1.0, 2.0]


def ddgs_offline_error(kind: str = "DNSError") -> Exception:
    """What `DDGS().images` raises without a connection (ddgs 9, primp 2): its HTTP client wraps primp's error
    in a DDGSException, and the search wraps that one again (see ddgs/http_client.py and ddgs/ddgs.py)."""
    import primp

    cause = getattr(primp, kind)("error sending request for url (https://duckduckgo.com/?q=otter) > error resolving DNS")
    try:
        try:
            raise cause
        except primp.PrimpError as ex:
            raise DDGSException(f"{type(ex).__name__}: {ex!r}") from ex
    except DDGSException as inner:
        return DDGSException(inner)


class OfflineSearch:
    """A backend that fails like ddgs does without a connection, counting its calls."""

    def __init__(self, error: Exception) -> None:
        self.error, self.calls = error, 0

    def __call__(self, query, *, max_results, region, safesearch, page):
        self.calls += 1
        raise self.error


@pytest.mark.parametrize(
    "error",
    [ddgs_offline_error("DNSError"), ddgs_offline_error("ConnectError"), socket.gaierror(-3, "Temporary failure")],
    ids=["dns", "refused", "stdlib-dns"],
)
def test_no_connection_is_one_call_and_one_plain_line(error):
    waits = []
    offline = OfflineSearch(error)
    with pytest.raises(SearchError) as caught:
        search_many(queries_for_class("sea otter"), 50, backend=offline, sleep=waits.append)
    assert str(caught.value) == "No internet connection: web search needs to reach DuckDuckGo."
    assert offline.calls == 1 and waits == []  # no retry, no other phrasing: none could reach the service either


def test_other_search_failures_are_not_retried():
    waits = []
    offline = OfflineSearch(DDGSException("engine broke: unexpected page"))
    with pytest.raises(SearchError, match=r"^image search for 'otter' failed: engine broke: unexpected page: try again"):
        search_images("otter", 5, backend=offline, sleep=waits.append)
    assert offline.calls == 1 and waits == []


def test_the_real_ddgs_error_for_a_refused_connection_is_recognised():
    """The exception `ddgs_offline_error` imitates, from the installed ddgs itself: a connection to a closed
    port on 127.0.0.1 (nothing leaves the machine)."""
    from ddgs.http_client import HttpClient

    with pytest.raises(DDGSException) as caught:
        HttpClient(timeout=5).get(f"http://127.0.0.1:{free_port()}/")
    assert scrape.is_connection_failure(DDGSException(caught.value))
    assert not scrape.is_rate_limit(DDGSException(caught.value))


def test_queries_for_class_gives_several_phrasings():
    qs = queries_for_class("sea_otter")
    assert qs[0] == "sea otter" and len(qs) >= 3 and len(set(qs)) == len(qs) and all("sea otter" in q for q in qs)
    assert queries_for_class("sea", subject="otter")[0] == "sea otter"
    assert queries_for_class("sea otter", subject="otter")[0] == "sea otter"
    # Nothing that only fits animals: the app is for any folder-per-class data set.
    for q in queries_for_class("red car") + queries_for_class("oak leaf"):
        assert not {"swimming", "wild"} & set(q.split()), q


# ---------------------------------------------------------------------------------------------- CLI


def test_cli_scrape_searches_downloads_and_summarises(tmp_path, site, monkeypatch, capsys):
    photos = made_photos("river", 3)
    urls = [site.add(f"/cli/{i}.jpg", p.read_bytes()) for i, p in enumerate(photos)] + [site.base + "/cli/gone.jpg"]
    fake = FakeSearch(urls)
    monkeypatch.setattr(scrape, "DEFAULT_BACKEND", fake)
    data = tmp_path / "data"
    rc = cli.main(["scrape", "river", "river otter", "--max", "10", "--data", str(data), "--json"])
    out, err = capsys.readouterr()
    assert rc == 0
    report = json.loads(out)
    assert report["found"] == 4 and len(report["kept"]) == 3 and report["failed"] == {"http 404": 1}
    assert err.strip().splitlines()[-1] == "kept 3, failed 1 (http 404: 1), duplicates 0"
    assert "4 images found" in err
    assert fake.calls[0]["query"] == "river otter"
    df = manifest.read(data)
    assert sorted(df["file"]) == sorted(report["kept"]) and set(df["query"]) == {"river otter"}


def test_cli_scrape_reports_a_rate_limit_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(scrape, "DEFAULT_BACKEND", FakeSearch([], fail=99))
    monkeypatch.setattr(scrape, "BACKOFF_SECONDS", 0.0)
    rc = cli.main(["scrape", "sea", "sea otter", "--data", str(tmp_path / "data")])
    _, err = capsys.readouterr()
    assert rc == 1
    assert err.count("\n") == 1 and err.startswith("error: image search for 'sea otter' failed after")


def test_cli_download_reads_a_url_file(tmp_path, site, capsys):
    photo = made_photos("sea", 8)[7]
    url = site.add("/file/one.jpg", photo.read_bytes())
    url_file = tmp_path / "urls.txt"
    url_file.write_text(f"# from a search\n{url}\n{site.base}/file/missing.jpg\n")
    data = tmp_path / "data"
    rc = cli.main(["download", "sea", str(url_file), "--data", str(data)])
    out, err = capsys.readouterr()
    assert rc == 0
    assert "kept 1, failed 1 (http 404: 1), duplicates 0" in out
    assert "http 404" in err  # progress names each failure
    assert len(list((data / "sea").glob("*.jpg"))) == 1
    assert manifest.read(data)["source_url"].tolist() == [url]


def test_cli_download_refuses_unsafe_class_and_missing_file(tmp_path, capsys):
    url_file = tmp_path / "urls.txt"
    url_file.write_text("http://127.0.0.1:9/x.jpg\n")
    assert cli.main(["download", "../evil", str(url_file), "--data", str(tmp_path / "data")]) == 1
    assert cli.main(["download", "sea", str(tmp_path / "nope.txt"), "--data", str(tmp_path / "data")]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 2 and all(line.startswith("error: ") for line in err.strip().splitlines())
    assert not (tmp_path / "evil").exists()


# ---------------------------------------------------------------------------- web search panel logic


def test_search_view_shows_thumbnails_and_keeps_hits():
    from otter.app.ui_collect import search_view

    fake = FakeSearch(["http://x/a.jpg", "http://x/b.jpg"])
    items, hits, msg = search_view("sea otter", 10, backend=fake)
    assert items == [("http://x/a.jpg", "otter 0 · 500×333"), ("http://x/b.jpg", "otter 1 · 500×333")]
    assert [h["url"] for h in hits] == ["http://x/a.jpg", "http://x/b.jpg"] and "Found 2 images" in msg
    items, hits, msg = search_view("sea otter", 10, variants=True, backend=FakeSearch(["http://x/a.jpg"]))
    assert len(hits) == 1 and "*sea otter close up*" in msg  # several phrasings, repeats dropped
    assert search_view("  ", 10, backend=fake)[1] == []


def test_search_view_turns_a_rate_limit_into_a_message(monkeypatch):
    from otter.app.ui_collect import search_view

    monkeypatch.setattr(scrape, "BACKOFF_SECONDS", 0.0)
    items, hits, msg = search_view("sea otter", 10, backend=FakeSearch([], fail=99))
    assert items == [] and hits == [] and msg.startswith("⚠️ image search for 'sea otter' failed") and "\n" not in msg


def test_search_view_says_no_internet_at_once():
    from otter.app.ui_collect import search_view

    offline = OfflineSearch(ddgs_offline_error())
    started = time.monotonic()
    items, hits, msg = search_view("sea otter", 50, variants=True, backend=offline)
    assert msg == "⚠️ No internet connection: web search needs to reach DuckDuckGo."
    assert items == [] and hits == [] and offline.calls == 1 and time.monotonic() - started < 1


def test_download_view_refuses_local_addresses_by_default(tmp_path, site):
    from otter.app.ui_collect import download_view

    url = site.add("/private.jpg", made_photos("river", 1)[0].read_bytes())
    hits = search_images("river otter", 10, backend=FakeSearch([url, site.add("/hop.jpg", status=302, to=url)]))
    msg = download_view(tmp_path / "data", "river", hits)
    assert msg == "Downloaded into **river**: kept 0, failed 2 (blocked address: 2), duplicates 0."
    assert not list((tmp_path / "data" / "river").iterdir())


def test_download_refuses_a_redirect_to_a_local_address(tmp_path, site, monkeypatch):
    import socket

    # Pretend "images.example" is a public host whose image redirects into the local network.
    real = socket.getaddrinfo
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda host, *a, **k: (
            [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 80))]
            if host == "images.example"
            else real(host, *a, **k)
        ),
    )
    target = site.add("/inner.jpg", made_photos("river", 1)[0].read_bytes())
    transport = httpx.MockTransport(lambda request: httpx.Response(302, headers={"Location": target}))
    from otter.data.download import refuse_private

    with httpx.Client(transport=transport, follow_redirects=True, event_hooks={"request": [refuse_private]}) as client:
        result = download_images(["http://images.example/otter.jpg"], tmp_path / "data" / "river", client=client)
    assert dict(result.failed) == {"blocked address": 1}


def test_download_refuses_a_host_that_rebinds_to_a_local_address(tmp_path, site, monkeypatch):
    import socket

    # DNS rebinding: "rebind.example" answers with a public address when checked, then with 127.0.0.1
    # (where the test site listens) when the connection is made.
    real, answers = socket.getaddrinfo, iter(["93.184.216.34"])
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda host, port, *a, **k: (
            [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers, "127.0.0.1"), port))]
            if host == "rebind.example"
            else real(host, port, *a, **k)
        ),
    )
    port = httpx.URL(site.add("/rebound.jpg", made_photos("river", 1)[0].read_bytes())).port
    result = download_images([f"http://rebind.example:{port}/rebound.jpg"], tmp_path / "data" / "river", allow_private=False)
    assert dict(result.failed) == {"blocked address": 1} and result.kept == []
    assert "connected to the private or local address 127.0.0.1" in result.outcomes[0].detail
    assert not list((tmp_path / "data" / "river").glob("*.jpg"))


def test_the_connection_check_passes_public_peers_and_proxies():
    from otter.data.download import PeerCheck

    class Stream:
        closed = False

        def __init__(self, addr):
            self.addr = addr

        def get_extra_info(self, name):
            return self.addr if name == "server_addr" else None

        def close(self):
            self.closed = True

    check, public, stream = PeerCheck("images.example"), Stream(("93.184.216.34", 443)), Stream(("10.0.0.8", 3128))
    check("connection.connect_tcp.started", {"host": "images.example", "port": 443})
    check("connection.connect_tcp.complete", {"return_value": public})
    assert not public.closed
    check("connection.connect_tcp.started", {"host": "proxy.internal", "port": 3128})
    check("connection.connect_tcp.complete", {"return_value": stream})  # a proxy: the proxy resolves
    assert not stream.closed
    check("connection.connect_tcp.started", {"host": "images.example", "port": 80})
    with pytest.raises(Exception, match="private or local address 10.0.0.8"):
        check("connection.connect_tcp.complete", {"return_value": stream})
    assert stream.closed


def test_download_view_downloads_hits_into_a_new_class(tmp_path, site, monkeypatch):
    from otter.app import ui_collect
    from otter.app.ui_collect import download_view

    monkeypatch.setattr(ui_collect, "ALLOW_PRIVATE_URLS", True)  # the test server is on 127.0.0.1

    photos = made_photos("river", 6)[4:]
    urls = [site.add(f"/panel/{i}.jpg", p.read_bytes()) for i, p in enumerate(photos)] + [site.base + "/panel/gone.jpg"]
    hits = search_images("river otter", 10, backend=FakeSearch(urls))
    data = tmp_path / "data"
    seen = []
    msg = download_view(data, "river", hits, progress=lambda e: seen.append((e.done, e.total)))
    assert msg == "Downloaded into **river**: kept 2, failed 1 (http 404: 1), duplicates 0."
    assert seen[-1] == (3, 3) and len(list((data / "river").glob("*.jpg"))) == 2
    assert set(manifest.read(data)["query"]) == {"river otter"}
    assert download_view(data, "river", []) == "Nothing to download: search first."
    assert download_view(data, "../up", hits).startswith("⚠️ class name")
    assert not (tmp_path / "up").exists()


def test_cli_scrape_search_only_prints_a_url_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(scrape, "DEFAULT_BACKEND", FakeSearch(["http://x/a.jpg", "http://x/b.jpg"]))
    rc = cli.main(["scrape", "sea", "sea otter", "--variants", "--search-only", "--data", str(tmp_path / "data")])
    assert rc == 0 and capsys.readouterr().out.splitlines() == ["http://x/a.jpg", "http://x/b.jpg"]
    assert not (tmp_path / "data").exists()  # nothing downloaded, no folder made


def test_cli_download_and_its_errors_never_import_torch(tmp_path):
    # Collecting images needs no model code: the command starts in a fraction of a second, not ~2 s.
    import subprocess
    import sys

    urls = tmp_path / "urls.txt"
    urls.write_text("# nothing yet\n")
    code = (
        "import sys; from otter import cli; "
        f"a = cli.main(['download', 'sea', {str(urls)!r}, '--data', {str(tmp_path / 'data')!r}]); "
        f"b = cli.main(['download', 'sea', {str(tmp_path / 'missing.txt')!r}, '--data', {str(tmp_path / 'data')!r}]); "
        "print(a, b, 'torch' in sys.modules)"
    )
    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=str(repo))
    assert out.stdout.split()[-3:] == ["0", "1", "False"], out.stderr
    assert "error: no URL file" in out.stderr


def test_pasted_urls_are_added_with_one_line_per_failed_url(tmp_path, site):
    from otter.app import curate

    photos = made_photos("sea", 8)[6:]
    good = [site.add(f"/paste/{i}.jpg", p.read_bytes()) for i, p in enumerate(photos)]
    page = site.add("/paste/page.jpg", b"<html>not a picture</html>", ctype="text/html")
    missing = site.base + "/paste/gone.jpg"
    text = f"# two otters\n{good[0]}\n\n{good[1]}\n{page}\n{missing}\nftp://example.org/x.jpg\n"
    data = tmp_path / "data"
    msg = curate.add_urls(data, "sea", text, allow_private=True, timeout=TIMEOUT, min_side=16)
    assert msg.startswith("Added 2 images to **sea**: kept 2, failed 3")
    assert f"- {page}: not an image" in msg and f"- {missing}: http 404" in msg and "- ftp://example.org/x.jpg: bad url" in msg
    assert len(list((data / "sea").glob("*.jpg"))) == 2
    assert set(manifest.read(data)["source_url"]) == set(good)  # recorded like any download
    again = curate.add_urls(data, "river", good[0], allow_private=True, timeout=TIMEOUT)
    assert again.startswith("Added 0 images to **river**") and f"- {good[0]}: duplicate of sea/" in again
    assert "blocked address" in curate.add_urls(data, "sea", good[1])  # the app refuses local addresses by default
    assert curate.add_urls(data, None, good[0]).startswith("Choose (or add) a class")
    assert curate.add_urls(data, "sea", "\n# nothing\n").startswith("Paste image URLs")
    assert curate.add_urls(data, "../up", good[0]).startswith("Cannot add the URLs: class name")
    assert "at most" in curate.add_urls(data, "sea", "\n".join(f"http://x/{i}.jpg" for i in range(curate.URL_LIMIT + 1)))
