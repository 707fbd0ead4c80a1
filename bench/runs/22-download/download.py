"""Download speed: our `download_images` vs fastai's `download_images` on the same URLs from a local server.

    python bench/runs/22-download/download.py [--data ../shared/otters] [--n 60] [--latency 0.05] [--workers 8]

A server on 127.0.0.1 serves `--n` real photos, each after `--latency` seconds (a stand-in for a
remote host's round trip). Three pipelines fetch the same URL list (interleaved, `--repeat` times; medians), in this run:
fastai `download_images` alone (saves the bytes, checks nothing), fastai's full recipe from the
original project (`download_images` + `verify_images` + `resize_images(max_size=512)`), and ours
(fetch, full decode, size and bomb checks, resize to 512, hash-named, manifest row). Images per
second and ratios go to stdout and to bench/results.json under "download".
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the repository root
warnings.filterwarnings("ignore")

from bench.common import record  # noqa: E402
from otter.data.download import download_images  # noqa: E402


def serve(files: list[Path], latency: float) -> tuple[ThreadingHTTPServer, list[str]]:
    blobs = {f"/img/{i}{p.suffix}": p.read_bytes() for i, p in enumerate(files)}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like a real image host
        disable_nagle_algorithm = True  # as real servers do; else headers and body wait on delayed ACKs (40 ms)

        def do_GET(self):  # noqa: N802 - http.server's naming
            body = blobs.get(self.path)
            time.sleep(latency)
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    return server, [base + path for path in blobs]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[4] / "shared" / "otters"))
    ap.add_argument("--n", type=int, default=60, help="photos to serve (half from each class)")
    ap.add_argument("--latency", type=float, default=0.05, help="seconds the server waits before each answer")
    ap.add_argument("--workers", type=int, default=8, help="threads, the same for both (fastai's default is 8)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each pipeline, interleaved; the median counts")
    args = ap.parse_args()
    from fastai.vision.utils import download_images as fastai_download
    from fastai.vision.utils import resize_images, verify_images

    classes = sorted(p for p in Path(args.data).iterdir() if p.is_dir())
    per_class = -(-args.n // len(classes))
    files = [f for c in classes for f in sorted(c.iterdir())[:per_class]][: args.n]
    server, urls = serve(files, args.latency)
    results = {"n_urls": len(urls), "latency_s": args.latency, "workers": args.workers, "repeats": args.repeat}
    times: dict[str, list[float]] = {"fastai_download": [], "fastai_download_verify_resize": [], "ours": []}
    counts: dict[str, int] = {}
    summary = ""
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            # Warm up both code paths (imports, thread pools, first connections) on two URLs.
            fastai_download(tmp / "warm_fastai", urls=urls[:2], n_workers=args.workers)
            download_images(urls[:2], tmp / "warm" / "x", max_workers=args.workers)
            # Interleaved repeats, each into a fresh folder (ours would otherwise find only duplicates).
            for i in range(args.repeat):
                t = time.perf_counter()
                fastai_download(tmp / f"fastai{i}", urls=urls, n_workers=args.workers)
                times["fastai_download"].append(time.perf_counter() - t)
                counts["fastai_download"] = len(list((tmp / f"fastai{i}").iterdir()))

                t = time.perf_counter()
                fastai_download(tmp / f"full{i}", urls=urls, n_workers=args.workers)
                for p in verify_images(list((tmp / f"full{i}").iterdir())):
                    p.unlink()
                resize_images(tmp / f"full{i}", max_size=512, dest=tmp / f"resized{i}", max_workers=args.workers)
                times["fastai_download_verify_resize"].append(time.perf_counter() - t)
                counts["fastai_download_verify_resize"] = len(list((tmp / f"resized{i}").iterdir()))

                t = time.perf_counter()
                ours = download_images(urls, tmp / f"data{i}" / "otters", max_workers=args.workers, max_side=512)
                times["ours"].append(time.perf_counter() - t)
                counts["ours"], summary = len(ours.kept), ours.summary_line()
    finally:
        server.shutdown()
        server.server_close()

    for key, ts in times.items():
        sec = statistics.median(ts)
        results[key] = {"seconds": round(sec, 3), "images": counts[key], "images_per_s": round(counts[key] / sec, 1)}
    results["ours"]["summary"] = summary
    for key in ("fastai_download", "fastai_download_verify_resize"):
        results[f"ratio_vs_{key}"] = round(results["ours"]["images_per_s"] / results[key]["images_per_s"], 2)
    record("download", results)
    print(f"{len(urls)} URLs, {args.latency * 1000:.0f} ms server latency, {args.workers} workers, median of {args.repeat} runs")
    for key in ("fastai_download", "fastai_download_verify_resize", "ours"):
        r = results[key]
        print(f"  {key:<32} {r['images']:>3} images in {r['seconds']:6.2f} s  = {r['images_per_s']:6.1f} images/s")
    print(f"ours vs fastai download_images: {results['ratio_vs_fastai_download']:.2f}x")
    print(f"ours vs fastai download + verify_images + resize_images: {results['ratio_vs_fastai_download_verify_resize']:.2f}x")


if __name__ == "__main__":
    main()
