"""Turn user-supplied class and file names into paths that are guaranteed to stay inside a root folder."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

from ..errors import BadInput

MAX_NAME_LENGTH = 120


class UnsafePath(BadInput):
    """A name or path that would reach outside the data or models folder."""


def check_name(name: str, what: str = "name") -> str:
    """Return `name` if it is a plain, single path component; raise `UnsafePath` otherwise."""
    if not isinstance(name, str):
        raise UnsafePath(f"{what} must be text, not {type(name).__name__}")
    name = unicodedata.normalize("NFC", name.strip())
    if not name:
        raise UnsafePath(f"{what} is empty")
    if len(name) > MAX_NAME_LENGTH:
        raise UnsafePath(f"{what} is too long ({len(name)} characters, limit {MAX_NAME_LENGTH})")
    if name in (".", ".."):
        raise UnsafePath(f"{what} {name!r} is not allowed")
    if any(c in name for c in ("/", "\\", "\x00")) or any(unicodedata.category(c) == "Cc" for c in name):
        raise UnsafePath(f"{what} {name!r} must not contain path separators or control characters")
    if name.startswith("."):
        raise UnsafePath(f"{what} {name!r} must not start with a dot")
    if os.path.isabs(name) or (len(name) > 1 and name[1] == ":"):
        raise UnsafePath(f"{what} {name!r} must not be an absolute path")
    return name


CLASS_NAME_FORBIDDEN = '<>&"`=*[]{}|#\\'


def check_class_name(name: str) -> str:
    """A name for a new class: `check_name`'s rules, and none of the characters HTML and Markdown give a meaning
    to (CLASS_NAME_FORBIDDEN: < > & " ` = * [ ] { } | # \\); letters of any script, digits, emoji, spaces and
    other punctuation are fine. Classes made by hand with other names still work: the app escapes every name."""
    name = check_name(name, "class name")
    bad = sorted({c for c in name if c in CLASS_NAME_FORBIDDEN})
    if bad:
        raise UnsafePath(f"a class name may not hold {' '.join(bad)} (HTML and Markdown would read them)")
    return name


def is_inside(path: os.PathLike | str, root: os.PathLike | str) -> bool:
    """Whether `path`, with every symlink resolved, lies inside `root` (also resolved)."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


def inside(root: os.PathLike | str, *names: str, what: str = "name") -> Path:
    """`root/names...` after checking each name, refusing anything whose real path leaves `root`."""
    path = Path(root)
    for name in names:
        path = path / check_name(name, what)
    if not is_inside(path, root):
        raise UnsafePath(f"{'/'.join(names)!r} points outside {root}")
    return path


def inside_path(root: os.PathLike | str, path: os.PathLike | str) -> Path:
    """Accept a full path given by a caller only if it resolves inside `root`."""
    p = Path(path)
    if not p.is_absolute():
        p = Path(root) / p
    if not is_inside(p, root) or not is_inside(p.parent, root):
        raise UnsafePath(f"{str(path)!r} is outside {root}")
    return p
