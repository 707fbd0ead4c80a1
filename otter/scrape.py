"""Web image search through `ddgs` (DuckDuckGo), behind a one-function interface so tests and other services plug in.

A backend is any callable `backend(query, *, max_results, region, safesearch, page) -> list[dict]` returning
ddgs-style hits (`image`, `thumbnail`, `title`, `url` = the page, `width`, `height`); `search_images`
normalises them, drops repeats, and retries with backoff when the service refuses.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

# Defaults, in one place.
REGION = "wt-wt"  # no region
SAFESEARCH = "moderate"
RETRIES = 3  # extra tries after the first
BACKOFF_SECONDS = 2.0  # first wait; doubled each retry
PAGE_SIZE = 100  # DuckDuckGo images returns up to 100 hits per page


class SearchError(RuntimeError):
    """The search failed; the message says why and what to do, in one line."""


class SearchBackend(Protocol):
    def __call__(self, query: str, *, max_results: int, region: str, safesearch: str, page: int) -> list[dict[str, Any]]: ...


def ddgs_backend(query: str, *, max_results: int, region: str, safesearch: str, page: int = 1) -> list[dict[str, Any]]:
    """DuckDuckGo image search via `ddgs`. The DuckDuckGo engine is named explicitly: "auto" may pick
    Bing, which ignores `safesearch`, and a public app must honour it."""
    from ddgs import DDGS

    return DDGS(timeout=10).images(
        query, region=region, safesearch=safesearch, max_results=max_results, page=page, backend="duckduckgo"
    )


# The backend `search_images` uses when none is passed; tests and other front ends may replace it.
DEFAULT_BACKEND: SearchBackend = ddgs_backend


def _retryable() -> tuple[type[BaseException], ...]:
    try:
        from ddgs.exceptions import DDGSException
    except ImportError:  # pragma: no cover - ddgs is a runtime requirement
        return (OSError,)
    return (DDGSException, OSError)


def _int_or_none(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def normalise_hit(hit: dict[str, Any], query: str) -> dict[str, Any] | None:
    """One ddgs hit as {url, thumbnail, title, width, height, source_page, query}; None without an http(s) image URL."""
    url = str(hit.get("image") or "").strip()
    if not url.lower().startswith(("http://", "https://")):
        return None
    return {
        "url": url,
        "thumbnail": str(hit.get("thumbnail") or url),
        "title": str(hit.get("title") or ""),
        "width": _int_or_none(hit.get("width")),
        "height": _int_or_none(hit.get("height")),
        "source_page": str(hit.get("url") or ""),
        "query": query,
    }


def _call_with_retries(
    backend: SearchBackend,
    query: str,
    *,
    max_results: int,
    region: str,
    safesearch: str,
    page: int,
    retries: int,
    sleep: Callable[[float], None],
    backoff: float,
) -> list[dict[str, Any]]:
    retryable = _retryable()
    last: BaseException | None = None
    for attempt in range(retries + 1):
        try:
            return list(backend(query, max_results=max_results, region=region, safesearch=safesearch, page=page))
        except retryable as ex:
            last = ex
            if attempt < retries:
                sleep(backoff * 2**attempt)
    raise SearchError(
        f"image search for {query!r} failed after {retries + 1} {'try' if retries == 0 else 'tries'} {_explain(last)}"
    )


def _explain(ex: BaseException | None) -> str:
    text = " ".join(str(ex or "").split())
    # ddgs reports HTTP 403/429 (rate limiting) as "No results found.", so that message covers both.
    if not text or "no results" in text.lower():
        return "(no results): the search service may be rate-limiting: wait a minute and try again, or try another query"
    if len(text) > 160:
        text = text[:157] + "..."
    return f"({text}): check the internet connection, or wait a minute and try again"


def search_images(
    query: str,
    max_results: int = 100,
    region: str = REGION,
    safesearch: str = SAFESEARCH,
    backend: SearchBackend | None = None,
    retries: int = RETRIES,
    sleep: Callable[[float], None] = time.sleep,
    backoff: float | None = None,
) -> list[dict[str, Any]]:
    """Up to `max_results` image hits for `query`, each {url, thumbnail, title, width, height, source_page, query},
    without repeated image URLs. Fetches further pages while the service keeps returning new hits.
    Raises `SearchError` when the service keeps refusing (rate limit, network error)."""
    query = query.strip()
    if not query:
        raise SearchError("the search query is empty")
    if max_results < 1:
        return []
    backend = backend or DEFAULT_BACKEND
    backoff = BACKOFF_SECONDS if backoff is None else backoff
    hits: list[dict[str, Any]] = []
    seen: set[str] = set()
    page = 1
    while len(hits) < max_results:
        want = min(max_results - len(hits), PAGE_SIZE)
        raw = _call_with_retries(
            backend,
            query,
            max_results=want,
            region=region,
            safesearch=safesearch,
            page=page,
            retries=retries,
            sleep=sleep,
            backoff=backoff,
        )
        new = 0
        for r in raw:
            hit = normalise_hit(r, query)
            if hit and hit["url"] not in seen:
                seen.add(hit["url"])
                hits.append(hit)
                new += 1
        if new == 0 or len(raw) < want or page >= 10:
            break
        page += 1
    return hits[:max_results]


def queries_for_class(name: str, subject: str = "") -> list[str]:
    """Several phrasings for one class, to widen the search: "sea otter" -> "sea otter", "sea otter swimming", …
    `subject` is appended when the class name alone is ambiguous (class "sea", subject "otter")."""
    base = " ".join(name.replace("_", " ").replace("-", " ").split())
    if subject and subject.lower() not in base.lower().split():
        base = f"{base} {subject.strip()}"
    return [base, f"{base} photo", f"{base} swimming", f"{base} close up", f"{base} in the wild"]


def search_many(
    queries: Iterable[str], max_results: int = 100, backend: SearchBackend | None = None, **kwargs: Any
) -> list[dict[str, Any]]:
    """Hits for several queries, `max_results` in all (shared out evenly), without repeated image URLs.
    A query that fails is skipped as long as another succeeds; if all fail, the last `SearchError` is raised."""
    queries = [q for q in (q.strip() for q in queries) if q]
    if not queries:
        raise SearchError("no search query given")
    per_query = -(-max_results // len(queries))
    hits: list[dict[str, Any]] = []
    seen: set[str] = set()
    error: SearchError | None = None
    ok = False
    for q in queries:
        try:
            found = search_images(q, per_query, backend=backend, **kwargs)
            ok = True
        except SearchError as ex:
            error = ex
            continue
        for h in found:
            if h["url"] not in seen:
                seen.add(h["url"])
                hits.append(h)
    if not ok and error is not None:
        raise error
    return hits[:max_results]
