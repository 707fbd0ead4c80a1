"""`python -m otter COMMAND`: the command line over the otter package. Run a command with --help for examples."""

from __future__ import annotations

import argparse
import json
import sys

from . import cli_curate, cli_data, cli_models, cli_train, config
from .cli_common import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, CliError, shared_options
from .errors import describe

__all__ = ["EXIT_ERROR", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_SOME_FAILED", "EXIT_USAGE", "CliError", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m otter", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    opts = shared_options()
    cli_train.add_parser(sub, opts)  # train
    cli_models.add_predict_parsers(sub, opts)  # predict, evaluate
    cli_models.add_models_parser(sub, opts)  # models [default|delete|trash|restore]
    cli_data.add_parser(sub, [opts["data"], opts["json"]])  # data list|move|trash|restore|empty-trash|scan|export-index
    cli_curate.add_collect_parsers(sub, opts)  # verify, scrape, download
    cli_curate.add_audit_parser(sub, opts)  # audit
    return p


def main(argv: list[str] | None = None) -> int:
    config.quiet_dependency_warnings()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except Exception as ex:  # an OtterError is its one line; anything else: the traceback, then a line saying so
        from .model import distributed

        if distributed.peer_failure(ex):  # another process of the job failed and says why: one line, not N
            return EXIT_ERROR
        message = describe(ex)
        if distributed.launched():
            message = f"process {distributed.world_rank()} of {distributed.world_size()}: {message}"
        if getattr(args, "json", False):
            print(json.dumps({"error": message}))
        print(f"error: {message}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
