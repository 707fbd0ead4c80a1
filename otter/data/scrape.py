"""Web image search through `ddgs` (DuckDuckGo), behind a one-function interface so tests and other services plug in.

A backend is any callable `backend(query, *, max_results, region, safesearch, page) -> list[dict]` returning
ddgs-style hits (`image`, `thumbnail`, `title`, `url` = the page, `width`, `height`); `search_images`
normalises them, drops repeats, and retries with backoff when the service is rate-limiting. Any other failure is
reported at once, in one line: no connection at all (DNS, refused connection) as `NoConnection`.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from ..errors import OtterError

# Defaults, in one place.
REGION = "wt-wt"  # no region
SAFESEARCH = "moderate"
RETRIES = 3  # extra tries after the first
BACKOFF_SECONDS = 2.0  # first wait; doubled each retry
PAGE_SIZE = 100  # DuckDuckGo images returns up to 100 hits per page


class SearchError(OtterError, RuntimeError):
    """The search failed; the message says why and what to do, in one line."""


class NoConnection(SearchError):
    """The search service could not be reached at all (no DNS, no route, refused): retrying cannot help."""

    def __init__(self) -> None:
        super().__init__(NO_CONNECTION)


NO_CONNECTION = "No internet connection: web search needs to reach DuckDuckGo."


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


def _chain(ex: BaseException) -> list[BaseException]:
    """`ex` and every exception behind it: causes, contexts, and exceptions passed as arguments (ddgs wraps the
    HTTP client's error as `DDGSException(DDGSException(...) from primp.DNSError)`)."""
    seen: list[BaseException] = []
    todo = [ex]
    while todo:
        e = todo.pop()
        if any(e is s for s in seen):
            continue
        seen.append(e)
        todo += [x for x in (e.__cause__, e.__context__, *e.args) if isinstance(x, BaseException)]
    return seen


def _connection_errors() -> tuple[type[BaseException], ...]:
    # What ddgs's HTTP client (primp) raises when a host cannot be resolved or reached; a DNS timeout is a DNSError.
    # The OSError kinds cover other backends (e.g. ones built on the standard library).
    errors: tuple[type[BaseException], ...] = (ConnectionError, socket.gaierror)
    try:
        import primp
    except ImportError:  # pragma: no cover - primp comes with ddgs, a runtime requirement
        return errors
    return (*errors, primp.ConnectError, primp.DNSError)


def _search_errors() -> tuple[type[BaseException], ...]:
    """What a failing search may raise (anything else is a bug): ddgs's and its HTTP client's errors, OSError."""
    try:
        import primp
        from ddgs.exceptions import DDGSException
    except ImportError:  # pragma: no cover - ddgs is a runtime requirement
        return (OSError,)
    return (DDGSException, primp.PrimpError, OSError)


def is_connection_failure(ex: BaseException) -> bool:
    """True when `ex` (from a backend) means the service could not be reached at all: no DNS, no route, refused."""
    errors = _connection_errors()
    return any(isinstance(e, errors) for e in _chain(ex))


def is_rate_limit(ex: BaseException) -> bool:
    """True when `ex` (from a backend) is the service refusing for now: ddgs reports HTTP 403/429 as
    `DDGSException("No results found.")` (and has a `RatelimitException`)."""
    try:
        from ddgs.exceptions import DDGSException, RatelimitException
    except ImportError:  # pragma: no cover - ddgs is a runtime requirement
        return False
    return isinstance(ex, RatelimitException) or (type(ex) is DDGSException and "no results" in str(ex).lower())


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
    for attempt in range(retries + 1):
        try:
            return list(backend(query, max_results=max_results, region=region, safesearch=safesearch, page=page))
        except Exception as ex:
            if is_connection_failure(ex):
                raise NoConnection() from ex
            if not isinstance(ex, _search_errors()):
                raise  # a bug, not the service: let it show as one
            if not is_rate_limit(ex):
                raise SearchError(f"image search for {query!r} failed: {_short(ex)}") from ex
            if attempt < retries:
                sleep(backoff * 2**attempt)
    raise SearchError(
        f"image search for {query!r} failed after {retries + 1} {'try' if retries == 0 else 'tries'} (no results): "
        "the search service may be rate-limiting: wait a minute and try again, or try another query"
    )


def _short(ex: BaseException) -> str:
    text = " ".join(str(ex).split()) or type(ex).__name__
    if len(text) > 160:
        text = text[:157] + "..."
    if "timed out" in text.lower() or "timeout" in type(ex).__name__.lower():
        return f"the search service did not answer in time ({text}): try again"
    return f"{text}: try again, or try another query"


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
    Raises `SearchError` when the service keeps refusing (rate limit) or fails otherwise, `NoConnection` (a
    `SearchError`) at once when it cannot be reached."""
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
    """Several phrasings for one class, to widen the search: "sea otter" -> "sea otter", "sea otter photo", …
    Only words that fit any subject (a car, a leaf, a rash): nothing like "swimming" or "in the wild".
    `subject` is appended when the class name alone is ambiguous (class "sea", subject "otter")."""
    base = " ".join(name.replace("_", " ").replace("-", " ").split())
    if subject and subject.lower() not in base.lower().split():
        base = f"{base} {subject.strip()}"
    return [base, f"{base} photo", f"{base} close up", f"{base} photography", f"{base} picture"]


def search_many(
    queries: Iterable[str], max_results: int = 100, backend: SearchBackend | None = None, **kwargs: Any
) -> list[dict[str, Any]]:
    """Hits for several queries, `max_results` in all (shared out evenly), without repeated image URLs.
    A query that fails is skipped as long as another succeeds; if all fail, the last `SearchError` is raised.
    `NoConnection` is raised at once: without a connection the other queries would fail the same way."""
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
        except NoConnection:
            raise
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
