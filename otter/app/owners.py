"""Owners and visitors: who may change the data set and the models, decided on the server for every event.

Who is who (`access_from_env`):
- **local**: the server listens on loopback only and nothing is configured: the one local user is the owner;
- **space** (`SPACE_ID` is set): visitors sign in with Hugging Face (`gr.LoginButton`); owners are the usernames in
  $OTTER_OWNERS (comma-separated), by default the Space's author ($SPACE_AUTHOR_NAME);
- **auth** ($OTTER_AUTH=`user:password[,user:password...]`): Gradio's login page in front of the app; those users are
  owners, narrowed to $OTTER_OWNERS when it is set;
- **visitors**: listening beyond loopback (or a share link) with nothing configured: nobody is an owner;
- **trusted**: the same with $OTTER_TRUST_NETWORK=1: everyone who can reach the server is an owner (its risk:
  anyone on that network can delete the data set and the models).
The command line is always the owner: it never goes through this module.

The guard (`guard_events`) is applied once, to the finished Blocks: every event's function is wrapped so that a
visitor's call is refused with one line and runs nothing, except the functions marked `visitors_may` (Predict).
A new handler is therefore owner-only unless someone marks it, and tests/test_owners.py lists every event of the
app's config to check that each is guarded or on its explicit "visitors may" list.

The caller is read from Gradio's request context (`gradio.context.LocalContext.request`, which Gradio sets around
every event function) rather than from a `gr.Request` parameter: wrapped functions keep their own signatures
(`*args` handlers, `gr.SelectData`, `gr.Progress`), which Gradio inspects to inject its special arguments.
"""

from __future__ import annotations

import functools
import inspect
import ipaddress
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import gradio as gr

OWNERS_ENV = "OTTER_OWNERS"
AUTH_ENV = "OTTER_AUTH"
TRUST_ENV = "OTTER_TRUST_NETWORK"

SIGN_IN_LINE = "Sign in as an owner of this Space to curate and train."
VISITOR_LINES = {
    "space": SIGN_IN_LINE,
    "auth": "Only the app's owners may curate and train (ask one to add you to OTTER_OWNERS).",
    "visitors": "This app is open to visitors: they may predict; curating and training need an owner "
    f"(the app's host sets {AUTH_ENV}, see the README).",
}
_VISITORS_MAY = "_otter_visitors_may"
_GUARDED = "_otter_guarded"
QUIET_TRIGGERS = {"load", "tick"}  # refused silently: a visitor's page loads and polls without error pop-ups


@dataclass(frozen=True)
class Access:
    """Who is an owner: `mode` is one of local, space, auth, visitors, trusted (see the module's docstring);
    `owners` the owners' usernames (space and auth); `logins` the (user, password) pairs of auth mode."""

    mode: str
    owners: frozenset[str] = frozenset()
    logins: tuple[tuple[str, str], ...] = ()

    @property
    def everyone_owner(self) -> bool:
        return self.mode in ("local", "trusted")

    def is_owner(self, request: gr.Request | None) -> bool:
        """Whether the caller of `request` is an owner; no request (or no user) is a visitor except where everyone
        is an owner."""
        if self.everyone_owner:
            return True
        name = username(request, self.mode)
        return name is not None and name.casefold() in self.owners

    def refusal(self) -> str:
        return VISITOR_LINES.get(self.mode, SIGN_IN_LINE)

    def startup_line(self) -> str:
        """What the app prints at start: who is an owner here, and how to become one where nobody is."""
        if self.mode == "local":
            return "otter: listening on this machine only: you are the owner."
        if self.mode == "trusted":
            return (
                f"otter: {TRUST_ENV}=1 is on: EVERYONE who can reach this server is an owner and may delete the data "
                "set and the models. Use it only on a network you trust."
            )
        if self.mode == "space":
            return f"otter: on a Space: owners (signed in with Hugging Face) are {', '.join(sorted(self.owners)) or 'nobody'}."
        if self.mode == "auth":
            return f"otter: {AUTH_ENV} login: owners are {', '.join(sorted(self.owners)) or 'nobody'}."
        return (
            "otter: listening beyond this machine with no owners configured: everyone is a visitor (Predict only). "
            f"To become an owner set {AUTH_ENV}=user:password (or run on a Space with {OWNERS_ENV}); "
            f"{TRUST_ENV}=1 makes everyone an owner (only on a trusted network)."
        )


def _names(text: str | None) -> frozenset[str]:
    return frozenset(n.strip().casefold() for n in (text or "").split(",") if n.strip())


def parse_logins(text: str) -> tuple[tuple[str, str], ...]:
    """$OTTER_AUTH's `user:password[,user:password...]` as pairs; a malformed entry is a ValueError naming it."""
    pairs = []
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        user, sep, password = entry.partition(":")
        if not sep or not user.strip() or not password:
            raise ValueError(f"{AUTH_ENV}: {user.strip() or entry[:1] + '…'!r} is not user:password")
        pairs.append((user.strip(), password))
    return tuple(pairs)


def is_loopback(host: str | None) -> bool:
    """Whether a server bound to `host` is reachable from this machine only (Gradio's default is 127.0.0.1)."""
    host = (host or "127.0.0.1").strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def access_from_env(env: Mapping[str, str] | None = None, server_name: str | None = None, share: bool = False) -> Access:
    """Who is an owner, from the environment (see the module's docstring). `server_name` and `share` are
    `launch`'s; by default the server name is $GRADIO_SERVER_NAME."""
    env = os.environ if env is None else env
    narrowed = _names(env.get(OWNERS_ENV))
    if env.get(AUTH_ENV, "").strip():
        logins = parse_logins(env[AUTH_ENV])
        owners = frozenset(u.casefold() for u, _ in logins)
        return Access("auth", owners & narrowed if narrowed else owners, logins)
    if env.get("SPACE_ID"):
        return Access("space", narrowed or _names(env.get("SPACE_AUTHOR_NAME")))
    if is_loopback(server_name or env.get("GRADIO_SERVER_NAME")) and not share:
        return Access("local")
    if env.get(TRUST_ENV, "").strip().lower() in ("1", "true", "yes", "on"):
        return Access("trusted")
    return Access("visitors")


def username(request: gr.Request | None, mode: str) -> str | None:
    """The caller's name: Gradio's login (auth mode) or the Hugging Face profile of the session (space mode)."""
    if request is None:
        return None
    if mode == "auth":
        return getattr(request, "username", None)
    info = _session(request).get("oauth_info") or {}
    if info.get("expires_at") is not None and info["expires_at"] < time.time():
        return None  # an expired sign-in is signed out (as Gradio treats it)
    return (info.get("userinfo") or {}).get("preferred_username")


def _session(request) -> Mapping:
    underlying = getattr(request, "request", None) or request
    scope = getattr(underlying, "scope", None)
    if isinstance(scope, dict):
        return scope.get("session") or {}
    return getattr(underlying, "session", None) or {}


def current_request() -> gr.Request | None:
    """The request of the event being processed (Gradio sets it around every event function)."""
    from gradio.context import LocalContext

    return LocalContext.request.get(None)


# ------------------------------------------------------------------------------------------- the guard


def visitors_may(fn: Callable) -> Callable:
    """Mark an event function that visitors may call (it neither writes anything nor reads the data set)."""
    setattr(fn, _VISITORS_MAY, True)
    return fn


def allowed_for_visitors(fn: Callable | None) -> bool:
    if fn is None:
        return False
    if getattr(fn, _VISITORS_MAY, False):
        return True
    # Gradio's own sign-in button checks the session on page load: a visitor must be able to sign in.
    return isinstance(getattr(fn, "__self__", None), gr.LoginButton)


def owner_only(fn: Callable, access: Callable[[], Access], quiet: bool = False) -> Callable:
    """`fn`, refused (one line, nothing run) for a visitor; `quiet`: refused silently (page loads, timers)."""

    def check():
        if access().is_owner(current_request()):
            return True
        if quiet:
            return False
        raise gr.Error(access().refusal(), print_exception=False)

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def guarded_async(*args, **kwargs):
            return await fn(*args, **kwargs) if check() else gr.skip()

        wrapper = guarded_async
    elif inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def guarded_gen(*args, **kwargs):
            if check():
                yield from fn(*args, **kwargs)
            else:
                yield gr.skip()

        wrapper = guarded_gen
    else:

        @functools.wraps(fn)
        def guarded(*args, **kwargs):
            return fn(*args, **kwargs) if check() else gr.skip()

        wrapper = guarded
    setattr(wrapper, _GUARDED, True)
    return wrapper


def guard_events(blocks: gr.Blocks, access: Callable[[], Access]) -> int:
    """Wrap every event function of `blocks` not marked `visitors_may` with `owner_only`; returns how many.
    Call it once, after the Blocks is complete (events added later would not be guarded: the coverage test
    catches them)."""
    count = 0
    for block_fn in blocks.fns.values():
        fn = block_fn.fn
        if fn is None or allowed_for_visitors(fn) or is_guarded(fn):
            continue
        quiet = any(trigger in QUIET_TRIGGERS for _, trigger in block_fn.targets)
        block_fn.fn = owner_only(fn, access, quiet=quiet)
        count += 1
    return count


def is_guarded(fn: Callable | None) -> bool:
    return bool(fn is not None and getattr(fn, _GUARDED, False))


def default_model_for_visitors(access: Callable[[], Access]) -> Callable[[Callable], Callable]:
    """For Predict's handlers `fn(photo, model_name, ...)`: a visitor predicts with the default model, whatever
    model name its page sends (its picker is hidden), so a visitor cannot make the server load every model."""

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def run(payload, model_name, *rest):
            return fn(payload, model_name if access().is_owner(current_request()) else None, *rest)

        return run

    return decorate


def no_data_set_in_page(blocks: gr.Blocks) -> None:
    """The page's config is the same for everyone who opens it: where visitors may look it must not carry the data
    set's class names, which two widgets take when the app is built (an owner's page fills them on load and on
    focus). tests/test_owners.py builds a visitors' app over a class and checks that its config never names it."""
    for block in blocks.blocks.values():
        if getattr(block, "elem_id", None) == "search-class":
            block.choices, block.value = [], None
        elif getattr(block, "elem_id", None) == "train-model-name":
            block.placeholder = "blank: the classes and the date"


# ------------------------------------------------------------------------------------ files of the data set


class RefuseFolders:
    """ASGI middleware: Gradio's file route (`/gradio_api/file=PATH`, `/file/PATH`) serves nothing inside the given
    folders, to anyone. The data folder is in `launch(allowed_paths=...)` only so that Gradio may copy its images
    into its cache when a view shows them (where owners' pages fetch them, under names no one can guess); without
    this, every file of it (`index.csv`, `.otter/`, `.trash/`) would be served to whoever knows its path."""

    def __init__(self, app, folders: list[Path]):
        self.app = app
        self.folders = [os.path.realpath(f) for f in folders]

    def refused(self, path: str) -> bool:
        path = unquote(path)
        for marker in ("/file=", "/file/"):
            at = path.find(marker)
            if at < 0:
                continue
            asked = path[at + len(marker) :]
            if "://" in asked:
                continue
            real = os.path.realpath(asked if asked.startswith("/") else "/" + asked)
            real_rel = os.path.realpath(asked)  # Gradio resolves a relative path against its working directory
            for folder in self.folders:
                for candidate in (real, real_rel):
                    if candidate == folder or candidate.startswith(folder.rstrip(os.sep) + os.sep):
                        return True
        return False

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and self.refused(scope.get("path", "")):
            await send({"type": "http.response.start", "status": 403, "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"File not allowed."})
            return
        await self.app(scope, receive, send)
