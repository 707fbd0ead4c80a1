"""What every command of `python -m otter` shares: the exit codes, the --data/--models/--json/--quiet options
(declared once, given to each command by argparse's `parents=`), and the small helpers the command modules use."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import config
from .errors import BadInput
from .progress import parse_ints

# Exit codes, the same for every command (README "Command line"); EXIT_SOME_FAILED is predict's alone.
EXIT_OK = 0
EXIT_ERROR = 1  # an OtterError (no model, a missing folder, a bad value): one line on stderr; a bug: traceback, then a line
EXIT_USAGE = 2  # argparse's: an unknown option, a missing argument
EXIT_SOME_FAILED = 3  # predict: every result printed, but at least one image could not be read
EXIT_INTERRUPTED = 130


class CliError(BadInput):
    """Options that do not go together, or a file named on the command line that is not there."""


def models_root(args) -> Path:
    return config.models_dir(getattr(args, "models", None))


def resolve_model(args) -> Path:
    from .model.io import default_model

    if args.model:
        return Path(args.model)
    return default_model(models_root(args))


def ints(text: str) -> tuple[int, ...]:
    """argparse type of --sizes and --epochs: "128,192" -> (128, 192)."""
    try:
        return parse_ints(text)
    except ValueError as ex:
        raise argparse.ArgumentTypeError(str(ex)) from ex


def shared_options(suppress: bool = False) -> dict[str, argparse.ArgumentParser]:
    """--data, --models, --json and --quiet, declared once and given to each command by argparse's `parents=`.
    `suppress`: for a sub-command's sub-command, where the option may also come after the action and an absent
    one must not reset what the command got."""
    default = {"default": argparse.SUPPRESS} if suppress else {}
    options = {}
    for name, flag, kwargs in (
        ("data", "--data", {"help": f"data set folder (default: ${config.DATA_DIR_ENV} or ./data)"}),
        ("models", "--models", {"help": f"models folder (default: ${config.MODELS_DIR_ENV} or ./models)"}),
        ("json", "--json", {"action": "store_true", "help": "print the result as JSON (its shape: see below)"}),
        ("quiet", "--quiet", {"action": "store_true", "help": "no progress on stderr"}),
    ):
        parent = argparse.ArgumentParser(add_help=False)
        parent.add_argument(flag, **kwargs, **default)
        options[name] = parent
    return options


def command(sub, name: str, help: str, epilog: str, parents: list[argparse.ArgumentParser], func) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help, epilog=epilog, parents=parents, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(func=func)
    return p
