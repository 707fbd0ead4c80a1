"""The failures a user can act on, and how the faces (the app, the CLI) show a failure.

Every failure that is the user's to fix, or that the user should simply be told about, is an `OtterError`
whose message says what went wrong and what to do, in one line. The faces show it as that line. Anything
else is a bug or something nobody foresaw: the faces log its full traceback and show a short line that
points to the log (`describe`), so a `ValueError` from numpy never reads as if the user had made a mistake.

    OtterError
      BadInput      a file, folder, name or value the user gave is wrong   (InvalidImage, UnsafePath, DatasetError, ...)
      ModelError    a model cannot be found, loaded, built or used          (NoModel, BackboneError)
      JobBusy       another job (training, audit) is running                (TrainingBusy)
      JobCancelled  the user cancelled the job                              (TrainingCancelled)

The older names subclass these and keep their place (`otter.data.images.InvalidImage`, ...), so `except
InvalidImage` still works; the built-in base each had (ValueError, RuntimeError) is kept too.
"""

from __future__ import annotations

import errno
import html
import logging
import re

log = logging.getLogger("otter")


class OtterError(Exception):
    """A failure the user can act on; the message says what and what to do, in one line."""


class BadInput(OtterError, ValueError):
    """A file, folder, name or value the user gave cannot be used."""


class ModelError(OtterError, ValueError):
    """A model cannot be found, loaded, built or used; the message names it and says why."""


class JobBusy(OtterError, RuntimeError):
    """Another job holds the lock; wait for it or cancel it."""


class JobCancelled(OtterError, RuntimeError):
    """The job was cancelled; nothing was written."""


# fastai re-raises what a callback raised with its message replaced by "Exception occured in `Cb` when calling event
# `after_batch`:\n\t<the message>" (once per callback it passes through): a line that names fastai's plumbing and
# hides the cause, so the faces drop it.
_FASTAI_CALLBACK_PREFIX = re.compile(r"\AException occur+ed in `[^`]*` when calling event `[^`]*`:\s*")


def one_line(ex: BaseException) -> str:
    """The first line of the message (without the prefix fastai puts on what a callback raised), or the
    exception's type name when it has none."""
    text = str(ex).strip()
    while (shorter := _FASTAI_CALLBACK_PREFIX.sub("", text, count=1)) != text:
        text = shorter
    return text.splitlines()[0] if text else type(ex).__name__


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|~#])")


def escape_md(text: object) -> str:
    """`text` as literal text inside Markdown (a class, file or model name, an error line): HTML's `<>&` become
    entities and Markdown's emphasis, link, code and table characters are backslash-escaped, so a name such as
    `<img src=x onerror=...>` or `a<b>bold</b>` shows as typed."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(str(text), quote=False))


def internal_error_line(ex: BaseException) -> str:
    return f"internal error ({type(ex).__name__}), see the log"


# Failures of the machine, not of the code or the input: the user (or whoever hosts the app) can act on them.
FILE_SYSTEM_ERRORS = {
    errno.ENOSPC: "no space left on the disk",
    errno.EDQUOT: "the disk quota is used up",
    errno.EROFS: "the folder is on a read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}


def describe(ex: BaseException) -> str:
    """What a face shows for `ex`: an `OtterError`'s one line; a full disk or a folder it may not write, as one line
    that says so; for anything else, the full traceback is logged (logger "otter", to stderr unless configured
    otherwise) and the line says an internal error happened."""
    if isinstance(ex, OtterError):
        return one_line(ex)
    if isinstance(ex, OSError) and ex.errno in FILE_SYSTEM_ERRORS:
        log.warning("%s: %s", type(ex).__name__, ex)
        where = f" ({ex.filename})" if ex.filename else ""
        return f"{FILE_SYSTEM_ERRORS[ex.errno]}{where}: free space or fix the folder's permissions, then try again"
    log.error("internal error: %s: %s", type(ex).__name__, ex, exc_info=ex)
    return internal_error_line(ex)
