"""Saved models load into plain torch/timm/torchvision modules with fastai's keys and outputs, without fastai."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from conftest import ROOT, made_photos
from otter.model import backbones, plain_model


@pytest.mark.parametrize(
    "name, head",
    [("efficientnet_lite0", "linear"), ("efficientnet_lite0", "fastai"), ("resnet18", "fastai"), ("resnet18", "linear")],
)
def test_plain_build_has_fastais_keys_shapes_and_outputs(name, head):
    fastai_net = backbones.build(name, 3, head).eval()
    plain = plain_model.build(name, 3, head).eval()
    ours = plain.state_dict()
    theirs = fastai_net.state_dict()
    assert list(ours) == list(theirs)
    assert all(ours[k].shape == theirs[k].shape for k in ours)
    plain.load_state_dict({k: v + 0.01 * torch.randn_like(v) if v.is_floating_point() else v for k, v in theirs.items()})
    fastai_net.load_state_dict(plain.state_dict())  # the same (perturbed) weights in both
    with torch.no_grad():  # odd, non-square sizes too: TensorFlow's "SAME" padding of strided convolutions
        for shape in [(2, 3, 64, 64), (1, 3, 71, 97)]:
            x = torch.randn(*shape)
            assert torch.allclose(plain(x), fastai_net(x), atol=1e-5)


def test_fastai_only_bodies_are_left_to_fastai():
    assert plain_model.build("xresnet18", 2) is None


def test_predicting_with_the_shipped_model_never_imports_fastai_timm_or_torchvision():
    code = (
        "import sys; from otter.model.predict import Predictor; from otter.model.io import default_model; "
        "p = Predictor.load(default_model('models')); "
        "r = p.classify(sys.argv[1]); "
        "print(r['label'], *(m in sys.modules for m in ('fastai', 'timm', 'torchvision')))"
    )
    photo = made_photos("sea", 1)[0]
    out = subprocess.run([sys.executable, "-c", code, str(photo)], cwd=ROOT, capture_output=True, text=True, check=True)
    label, *imported = out.stdout.split()
    assert label in ("river", "sea") and imported == ["False"] * 3, out.stdout + out.stderr


def test_the_predict_command_imports_only_what_predicting_needs():
    """`python -m otter predict` spends its time importing; it must not pull in training, web or UI libraries."""
    heavy = ("fastai", "timm", "torchvision", "httpx", "pandas", "gradio", "sklearn")
    code = (
        "import atexit, runpy, sys\n"
        f"atexit.register(lambda: print('loaded:', *[m for m in {heavy!r} if m in sys.modules]))\n"
        "sys.argv = ['otter', 'predict', '--models', 'models', sys.argv[1]]\n"
        "runpy.run_module('otter', run_name='__main__')\n"
    )
    photo = made_photos("sea", 1)[0]
    out = subprocess.run([sys.executable, "-c", code, str(photo)], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0 and ("sea" in out.stdout or "river" in out.stdout), out.stdout + out.stderr
    assert out.stdout.strip().splitlines()[-1] == "loaded:", out.stdout


@pytest.mark.parametrize("name", backbones.NAMES)
def test_every_architecture_in_the_table_has_help_and_the_two_cuts(name):
    """The table is the one place: each entry is in the help, builds for training, and both cuts find its parts."""
    assert name in backbones.arch_help() and backbones.get(name).help in backbones.arch_help()
    model = backbones.build(name, 2, "linear").eval()
    body, head = backbones.body_and_head(model)
    trunk, last = backbones.features_and_classifier(model)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        maps = body(x)
        assert maps.ndim == 4 and torch.allclose(head(maps), model(x), atol=1e-5)
        assert torch.allclose(last(trunk(x)), model(x), atol=1e-5) and last.out_features == 2
    plain = plain_model.build(name, 2, "linear")
    assert (plain is None) == (backbones.get(name).library == "fastai")


def test_the_cuts_refuse_a_network_that_is_not_body_and_head():
    with pytest.raises(backbones.BackboneError, match="not a \\(body, head\\)"):
        backbones.body_and_head(torch.nn.Linear(3, 2))
    with pytest.raises(backbones.BackboneError, match="one Linear"):
        backbones.features_and_classifier(torch.nn.Sequential(torch.nn.Identity(), torch.nn.ReLU()))
