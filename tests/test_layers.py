"""The house rules, read from the code: imports only go down the wings, only app/ imports Gradio, data/ imports no torch.

    app/, cli and otter/__init__ (the public API)  ->  review/  ->  model/  ->  data/  ->  config, errors

Every import counts, at module level or inside a function (a lazy import is still an arrow).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "otter"

# How far down each part of the package sits; an import may only reach the same level or lower.
LEVELS = {"base": 0, "data": 1, "model": 2, "review": 3, "app": 4, "face": 4}
WINGS = ("data", "model", "review", "app")
FACES = {
    "cli",
    "cli_common",
    "cli_curate",
    "cli_data",
    "cli_models",
    "cli_train",
    "__main__",
}  # the command line sits beside app/, and neither imports the other
DEEP_LEARNING = ("torch", "torchvision", "fastai", "timm")


def part_of(module: str) -> str:
    """`otter.model.train` -> "model"; `otter.cli` and `otter` itself (the public API) -> "face"; `otter.config`,
    `otter.errors` -> "base"."""
    bits = module.split(".")
    if len(bits) == 1:
        return "face"
    if len(bits) > 1 and bits[1] in WINGS:
        return bits[1]
    if len(bits) > 1 and bits[1] in FACES:
        return "face"
    return "base"


def module_name(path: Path, package: Path) -> str:
    rel = path.relative_to(package.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path, package: Path) -> list[tuple[int, str]]:
    """Every module `path` imports, anywhere in the file, as (line, absolute dotted name); `from x import y`
    gives `x.y` (y may be a module, as in `from otter import cli`)."""
    name = module_name(path, package)
    here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value))
    return found


def violations(package: Path) -> list[str]:
    """Each broken rule as "file:line: what" (one per import statement), for every .py file under `package`."""
    top = package.name
    found = {}
    for path in sorted(package.rglob("*.py")):
        name = module_name(path, package)
        part = part_of(name)
        where = path.relative_to(package.parent)
        for line, target in imports_of(path, package):
            first = target.split(".")[0]
            if first == top:
                target_part = part_of(target)
                if LEVELS[target_part] > LEVELS[part]:
                    found.setdefault((where, line), f"{where}:{line}: {part} imports {target} ({target_part} is above it)")
                elif part != target_part and {part, target_part} == {"app", "face"}:
                    found.setdefault(
                        (where, line), f"{where}:{line}: {part} imports {target} (the app and the CLI are separate faces)"
                    )
            elif first == "gradio" and part != "app":
                found.setdefault((where, line), f"{where}:{line}: {name} imports gradio (only app/ may)")
            elif first in DEEP_LEARNING and part in ("data", "base"):
                found.setdefault((where, line), f"{where}:{line}: {name} imports {first} ({part} imports no torch)")
    return list(found.values())


def test_the_package_keeps_the_house_rules():
    assert violations(PACKAGE) == []


def test_every_module_sits_in_a_wing_or_is_a_face_or_the_base():
    loose = sorted(p.name for p in PACKAGE.glob("*.py"))
    faces = ["cli.py", "cli_common.py", "cli_curate.py", "cli_data.py", "cli_models.py", "cli_train.py"]
    assert loose == ["__init__.py", "__main__.py", *faces, "config.py", "errors.py", "progress.py"]
    assert sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__") == sorted(WINGS)


@pytest.mark.parametrize(
    ("where", "source", "broken"),
    [
        ("data/files.py", "from ..model import train\n", "data imports otter.model"),
        ("model/net.py", "def late():\n    from ..app.ui import build_app\n", "model imports otter.app.ui"),
        ("review/look.py", "from ..app import ui\n", "review imports otter.app"),
        ("model/net.py", "def late():\n    import otter.review.audit\n", "model imports otter.review.audit"),
        ("config.py", "from .data import files\n", "base imports otter.data"),
        ("data/files.py", "def late():\n    import torch\n", "imports torch"),
        ("data/files.py", "from fastai.vision.all import Learner\n", "imports fastai"),
        ("data/files.py", "import importlib\nimportlib.import_module('timm')\n", "imports timm"),
        ("model/net.py", "import gradio as gr\n", "imports gradio"),
        ("cli.py", "from .app.ui import launch\n", "the app and the CLI are separate faces"),
        ("app/ui.py", "from .. import cli\n", "the app and the CLI are separate faces"),
    ],
)
def test_a_wrong_import_is_found(tmp_path, where, source, broken):
    package = tmp_path / "otter"
    for folder in ("", *WINGS):
        (package / folder).mkdir(parents=True, exist_ok=True)
        (package / folder / "__init__.py").write_text("")
    (package / where).write_text(source)
    found = violations(package)
    assert len(found) == 1 and broken in found[0], found


def test_downward_imports_pass(tmp_path):
    package = tmp_path / "otter"
    for folder in ("", *WINGS):
        (package / folder).mkdir(parents=True, exist_ok=True)
        (package / folder / "__init__.py").write_text("")
    (package / "app" / "ui.py").write_text("import gradio\nfrom ..review import look\nfrom .. import config\n")
    (package / "review" / "look.py").write_text("from ..model import net\nfrom ..data.files import read\n")
    (package / "model" / "net.py").write_text("import torch\nfrom ..data import files\nfrom ..errors import OtterError\n")
    (package / "data" / "files.py").write_text("import PIL\nfrom .. import config\nfrom .other import x\n")
    (package / "cli.py").write_text("from .review import look\nfrom .model import net\n")
    assert violations(package) == []


def test_importing_data_and_the_cli_loads_no_torch_and_nothing_below_app_loads_gradio():
    """What Python actually loads (third-party packages included), not only what the files say: `python -m otter
    download` and `scrape` never wait for torch."""
    code = (
        "import importlib, pkgutil, sys, otter\n"
        "def load(wing):\n"
        "    pkg = importlib.import_module('otter.' + wing)\n"
        "    for m in pkgutil.iter_modules(pkg.__path__, pkg.__name__ + '.'):\n"
        "        importlib.import_module(m.name)\n"
        "load('data'); import otter.cli  # the CLI loads model code only in the commands that need it\n"
        "print(sorted(m for m in ('torch', 'fastai', 'timm', 'torchvision', 'gradio') if m in sys.modules))\n"
        "load('model'); load('review')\n"
        "print('gradio' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["[]", "False"], out.stdout + out.stderr


def import_cycles(package: Path, parts: tuple[str, ...]) -> list[list[str]]:
    """Groups of modules (in `parts` of the package) that import each other, directly or round a loop; lazy
    imports count, since a function-level import is how a cycle hides."""
    modules = {module_name(p, package): p for p in package.rglob("*.py")}
    modules = {m: p for m, p in modules.items() if part_of(m) in parts and m != package.name}
    graph = {}
    for name, path in modules.items():
        deps = set()
        for _, target in imports_of(path, package):
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                deps.add(target)
        graph[name] = deps

    def reaches(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for dep in graph[todo.pop()]:
                if dep not in seen:
                    seen.add(dep)
                    todo.append(dep)
        return seen

    reach = {m: reaches(m) for m in graph}
    cycles = {frozenset({m} | {n for n in reach[m] if m in reach[n]}) for m in graph if m in reach[m]}
    return sorted(sorted(c) for c in cycles)


def test_no_import_cycles_anywhere_in_the_package():
    assert import_cycles(PACKAGE, ("base", "data", "model", "review", "app")) == []


def test_an_import_cycle_is_found(tmp_path):
    package = tmp_path / "otter"
    (package / "model").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "model" / "__init__.py").write_text("")
    (package / "model" / "explain.py").write_text("from .predict import preprocess\n")
    (package / "model" / "predict.py").write_text("def explain():\n    from .explain import explain\n")
    (package / "model" / "preprocess.py").write_text("import torch\n")
    assert import_cycles(package, ("model",)) == [["otter.model.explain", "otter.model.predict"]]


def private_imports(package: Path) -> list[str]:
    """`from .x import _name` and `module._name` between the package's modules: a leading underscore means
    "this file only"; what another module needs is public."""
    found = []
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        modules = set()  # names bound to one of the package's modules in this file
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").split(".")[0] == package.name):
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        found.append(f"{path.relative_to(package.parent)}:{node.lineno}: imports {alias.name}")
                    modules.add(alias.asname or alias.name)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and isinstance(node.value, ast.Name)
                and node.value.id in modules
            ):
                found.append(f"{path.relative_to(package.parent)}:{node.lineno}: uses {node.value.id}.{node.attr}")
    return found


def test_no_private_name_crosses_modules():
    assert private_imports(PACKAGE) == []


def test_a_private_name_from_another_module_is_found(tmp_path):
    package = tmp_path / "otter"
    (package / "app").mkdir(parents=True)
    (package / "app" / "view.py").write_text("from .jobview import _fmt_time\nfrom . import ui\nui._path(1)\n")
    assert private_imports(package) == ["otter/app/view.py:1: imports _fmt_time", "otter/app/view.py:3: uses ui._path"]
