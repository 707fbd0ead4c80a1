"""The README's "From Python" section, run as written: every public name of `otter` has an example there, and
each example works (in a folder with data/, holdout/ and photo.jpg, as the section says)."""

from __future__ import annotations

import re
import shutil
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

import otter
from conftest import ROOT, made_photos, make_small_set

FENCE = re.compile(r"```python\n(.*?)```", re.S)


def from_python_section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("\n## From Python\n")
    return text[start : text.index("\n## ", start + 1)]


def examples() -> list[str]:
    return FENCE.findall(from_python_section())


def test_every_public_name_has_an_example_and_is_exported():
    code = "\n".join(examples())
    for name in otter.__all__:
        if name != "__version__":
            assert f"otter.{name}" in code, f"README's From Python section has no example of otter.{name}"
            assert getattr(otter, name).__module__.startswith("otter.")
    with pytest.raises(AttributeError):
        otter.no_such_name  # noqa: B018


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """data/ and holdout/ (made photos, 64 px), photo.jpg, models/, and a web server with /otter.jpg."""
    make_small_set(tmp_path / "data", per_class=6)
    for cls in ("river", "sea"):
        (tmp_path / "holdout" / cls).mkdir(parents=True)
        for p in made_photos(cls, 9)[6:]:
            shutil.copy(p, tmp_path / "holdout" / cls / p.name)
    shutil.copy(made_photos("sea", 10)[9], tmp_path / "photo.jpg")
    (tmp_path / "web").mkdir()
    shutil.copy(made_photos("river", 11)[10], tmp_path / "web" / "otter.jpg")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OTTER_MODELS_DIR", raising=False)
    monkeypatch.delenv("OTTER_DATA_DIR", raising=False)
    handler = partial(SimpleHTTPRequestHandler, directory=str(tmp_path / "web"))
    handler.log_message = lambda *a: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_from_python_examples_run_as_written(workdir, capsys):
    folder, web = workdir
    namespace: dict = {}
    for code in examples():
        exec(compile(code.replace("https://example.org", web), "README.md", "exec"), namespace)  # noqa: S102
    out = capsys.readouterr().out
    assert (folder / "models" / "mine" / "model.json").is_file()
    assert "1 kept" in out or "kept 1" in out, out
    assert len(list((folder / "data" / "sea").glob("*.jpg"))) == 7  # the downloaded photo joined its class
    assert "no-such-folder does not exist" in out


def test_pip_install_gives_an_otter_command_that_is_the_cli():
    import tomllib

    from otter import cli

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    module, _, name = project["scripts"]["otter"].partition(":")
    assert module == "otter.cli" and getattr(cli, name) is cli.main


def test_the_readme_command_line_section_is_the_help_of_every_command():
    """README's "Every command's options" is `python docs/cli_help.py`'s output: a changed option fails here
    until the README is regenerated."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "docs/cli_help.py", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    text = (ROOT / "README.md").read_text()
    for command in ("train", "predict", "evaluate", "models", "models default", "verify", "scrape", "download", "audit"):
        assert f"<code>python -m otter {command} --help</code>" in text


def test_the_cpu_install_line_pins_the_same_torch_as_the_requirements():
    pins = dict(re.findall(r"^(torch|torchvision)==(\S+)", (ROOT / "requirements.txt").read_text(), re.M))
    line = next(x for x in (ROOT / "README.md").read_text().splitlines() if "download.pytorch.org/whl/cpu" in x)
    assert f"torch=={pins['torch']} torchvision=={pins['torchvision']} " in line
