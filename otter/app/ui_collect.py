"""Curate › Web search: find images online, show their thumbnails, download them into a class.

`search_view` and `download_view` hold the logic and return plain values (tested without Gradio);
`build_search_panel` only declares the widgets and wires them to those two.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import gradio as gr

from ..data import scrape
from ..data.dataset import list_classes
from ..data.download import download_images
from ..data.safepath import check_name
from ..errors import OtterError, escape_md
from ..progress import Event
from .handlers import download_progress

DEFAULT_MAX = 50
LIMIT = 200  # most images one search may fetch: keeps a public app polite to the search service
# The app may be public: image URLs from search results must not reach its own network (tests on 127.0.0.1 allow it).
ALLOW_PRIVATE_URLS = False


def search_view(
    query: str, max_results: int, variants: bool = False, backend: scrape.SearchBackend | None = None
) -> tuple[list[tuple[str, str]], list[dict], str]:
    """(gallery items as (thumbnail URL, caption), the hits to download later, a message)."""
    query = (query or "").strip()
    if not query:
        return [], [], "Type what to search for, e.g. *sea otter*."
    n = max(1, min(int(max_results or DEFAULT_MAX), LIMIT))
    queries = scrape.queries_for_class(query) if variants else [query]
    try:
        hits = scrape.search_many(queries, n, backend=backend)
    except scrape.SearchError as ex:
        return [], [], f"⚠️ {ex}"
    if not hits:
        return [], [], f"No images found for *{query}*."
    items = [(h["thumbnail"], _caption(h)) for h in hits]
    return (
        items,
        hits,
        f"Found {len(hits)} images for {', '.join(f'*{q}*' for q in queries)}. Pick a class and press **Download**.",
    )


def _caption(hit: dict) -> str:
    size = f"{hit['width']}×{hit['height']}" if hit.get("width") and hit.get("height") else ""
    title = (hit.get("title") or "")[:60]
    return " · ".join(x for x in (title, size) if x)


def download_view(
    data_dir: os.PathLike | str, cls: str | None, hits: list[dict], progress: Callable[[Event], None] | None = None
) -> str:
    """Download the hits into class `cls` (created if new); returns the summary as one Markdown line."""
    if not hits:
        return "Nothing to download: search first."
    if not cls or not str(cls).strip():
        return "⚠️ Pick a class (or type a new class name) to download into."
    try:
        name = check_name(str(cls), "class name")
        result = download_images(hits, Path(data_dir) / name, progress=progress, allow_private=ALLOW_PRIVATE_URLS)
    except OtterError as ex:
        return f"⚠️ {ex}"
    return f"Downloaded into **{escape_md(name)}**: {result.summary_line()}."


def build_search_panel(data_dir: os.PathLike | str, wrap: Callable[[Callable], Callable] = lambda fn: fn) -> dict:
    """Declare the panel inside the current Blocks context. `wrap` turns unexpected errors into one line
    (the app's `friendly`). Returns the parts another tab may chain on: "downloaded" (the Download event),
    "class" (the class dropdown) and "summary" (the result line)."""
    root = Path(data_dir)
    gr.Markdown(
        "Search the web (DuckDuckGo images, safe search on) and download the results into a class. "
        "Each image is checked (a real, whole image, at least 64 px), shrunk to 512 px and named by its content; "
        "copies of images already in any class are skipped."
    )
    with gr.Row():
        query = gr.Textbox(label="Search for", placeholder="e.g. sea otter", scale=3, elem_id="search-query")
        count = gr.Slider(10, LIMIT, value=DEFAULT_MAX, step=10, label="Max images", scale=2, elem_id="search-max")
        variants = gr.Checkbox(label="Also search variations (photo, close up, photography…)", value=False, scale=2)
        search_btn = gr.Button("Search", variant="primary", scale=1, elem_id="search-button")
    message = gr.Markdown(elem_id="search-message")
    found = gr.Gallery(label="Found", columns=8, height=360, allow_preview=True, elem_id="search-gallery")
    hits = gr.State([])
    with gr.Row():
        classes = list_classes(root)
        cls = gr.Dropdown(
            label="Download into class",
            choices=classes,
            value=classes[0] if classes else None,
            allow_custom_value=True,
            scale=3,
            elem_id="search-class",
        )
        download_btn = gr.Button("Download", variant="primary", scale=1, elem_id="search-download")
    summary = gr.Markdown(elem_id="search-summary")

    def on_search(q, n, v):
        return search_view(q, n, v)

    def on_download(c, found_hits, progress=gr.Progress()):
        return download_view(root, c, found_hits, download_progress(progress))

    def refresh_classes():
        # Choices only: sending the value back would wipe what the user typed while the request was under way.
        return gr.Dropdown(choices=list_classes(root))

    search_btn.click(wrap(on_search), [query, count, variants], [found, hits, message], api_visibility="private")
    query.submit(wrap(on_search), [query, count, variants], [found, hits, message], api_visibility="private")
    cls.focus(refresh_classes, None, [cls], api_visibility="private")
    downloaded = download_btn.click(wrap(on_download), [cls, hits], [summary], api_visibility="private")
    downloaded = downloaded.then(refresh_classes, None, [cls], api_visibility="private")
    return {"downloaded": downloaded, "class": cls, "summary": summary}
