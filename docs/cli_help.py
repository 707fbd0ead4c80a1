"""Write every command's `--help` into the README's "Every command's options" section (between the cli-help markers).

    python docs/cli_help.py          # rewrite the section
    python docs/cli_help.py --check  # exit 1 if the README differs from --help (tests/test_readme_examples.py)

The help is rendered 100 columns wide, whatever the terminal, so the output is the same everywhere."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
START, END = "<!-- cli-help start: python docs/cli_help.py -->", "<!-- cli-help end -->"
WIDTH = "100"


def commands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    """("python -m otter", the parser), then each command and each command's command, in the parser's order."""
    found = [(parser.prog, parser)]
    for action in parser._actions:  # argparse has no public way to list sub-parsers
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                found += commands(sub)
    return found


def section() -> str:
    os.environ["COLUMNS"] = WIDTH  # argparse wraps to the terminal's width: fix it
    sys.path.insert(0, str(ROOT))
    from otter.cli import build_parser

    parts = [START, ""]
    for prog, parser in commands(build_parser()):
        parts += [f"<details><summary><code>{prog} --help</code></summary>", "", "```text", parser.format_help().rstrip(), "```", "", "</details>", ""]
    return "\n".join([*parts, END])


def updated(readme: str) -> str:
    start, end = readme.index(START), readme.index(END) + len(END)
    return readme[:start] + section() + readme[end:]


def main() -> int:
    text = README.read_text()
    new = updated(text)
    if "--check" in sys.argv[1:]:
        if new != text:
            print("README.md's command line help is stale: run python docs/cli_help.py", file=sys.stderr)
            return 1
        return 0
    README.write_text(new)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
