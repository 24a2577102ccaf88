"""The from-scratch vision protocol: config checks, splits, augmentation, schedule, and
determinism of a whole (tiny) run by seed."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from poolwise.data.cifar import write_cifar_file
from poolwise.experiments.vision_scratch import (
    VisionConfig,
    _split_train,
    augment,
    cosine_warmup,
    prepare_data,
    run_vision,
)

TINY = {"dataset": "digits", "dim": 16, "depth": 1, "num_heads": 2, "ffn_dim": 16, "epochs": 1,
        "warmup_epochs": 0, "batch_size": 256}


@pytest.mark.parametrize("kwargs,match", [
    ({"pooler": "adapool-edge"}, "unknown pooler 'adapool-edge'"),
    ({"canvas": 50}, "patch=14 must divide the image side 28 and the canvas 50"),
    ({"canvas": 14}, r"canvas >= image side"),
    ({"dataset": "cifar10"}, "needs data_dir"),
    ({"dataset": "imagenet"}, "dataset must be one of"),
    ({"placement": "corner"}, "placement must be one of"),
    ({"warmup_epochs": 20}, r"warmup_epochs must be an int in \[0, epochs=15\]"),
    ({"num_heads": 3}, "num_heads=3 must divide dim=64"),
    ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
    ({"device": "gpu"}, "device must be"),
])
def test_bad_settings_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        VisionConfig(**kwargs)


def test_snr_follows_the_canvas():
    assert VisionConfig().snr == 1.0
    assert VisionConfig(canvas=56).snr == 0.25
    assert VisionConfig(canvas=84, patch=7).snr == pytest.approx(1 / 9)
    assert VisionConfig(dataset="cifar10", data_dir="x", patch=4).image_size == 32


def test_folds_are_contiguous_for_cifar_and_disjoint_always():
    cfg = VisionConfig(dataset="cifar10", data_dir="x", patch=4, folds=5, seed=7)  # fold 7 % 5 = 2
    train, val = _split_train(100, cfg)
    assert val.tolist() == list(range(40, 60)) and len(train) == 80
    digits = VisionConfig(folds=1)
    train, val = _split_train(1000, digits)
    assert len(val) == 100 and not set(train) & set(val) and len(train) + len(val) == 1000


def test_augment_crops_and_flips_per_image():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).reshape(2, 1, 4, 4) + 1
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(augment(x, 0, False, gen), x)
    out = augment(x, 1, False, gen)
    assert out.shape == x.shape
    for i in range(2):  # each output is a window of the zero-padded image
        padded = torch.nn.functional.pad(x[i, 0], (1, 1, 1, 1))
        assert any(torch.equal(out[i, 0], padded[r:r + 4, c:c + 4]) for r in range(3) for c in range(3))
    flips = augment(x.repeat(32, 1, 1, 1), 0, True, gen)
    flipped = [torch.equal(f, x[i % 2].flip(2)) for i, f in enumerate(flips)]
    assert 0 < sum(flipped) < 64


def test_cosine_schedule_warms_up_then_decays_to_zero():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = cosine_warmup(opt, 4, 12)
    lrs = []
    for _ in range(12):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert lrs[4:] == pytest.approx([0.5 * (1 + math.cos(math.pi * k / 8)) for k in range(8)])


def test_canvases_hide_the_digit_and_are_normalised():
    data = prepare_data(VisionConfig(dataset="digits", canvas=56, patch=14))
    assert data.train_x.shape[1:] == (1, 56, 56) and data.num_classes == 10
    assert abs(float(data.train_x.mean())) < 1e-3 and float(data.train_x.std()) == pytest.approx(1, abs=1e-2)
    assert len(data.val_y) == round(0.1 * (len(data.train_y) + len(data.val_y)))


def test_a_run_is_deterministic_by_seed_and_reports_what_it_measured():
    cfg = VisionConfig(**TINY, pooler="adapool-focal", canvas=42, seed=3)
    a, b = run_vision(cfg), run_vision(cfg)
    keys = ("test_acc", "best_val_acc", "best_epoch")
    assert [a["metrics"][k] for k in keys] == [b["metrics"][k] for k in keys]
    assert [r["train_loss"] for r in a["history"]] == [r["train_loss"] for r in b["history"]]
    c = run_vision(VisionConfig(**{**TINY, "seed": 4}, pooler="adapool-focal", canvas=42))
    assert [r["train_loss"] for r in c["history"]] != [r["train_loss"] for r in a["history"]]
    m = a["metrics"]
    assert m["snr"] == 4 / 9 and m["tokens"] == 9 and m["test_images"] == 359  # 20% of 1,797, by class
    assert 0.0 <= m["test_acc"] <= 1.0 and m["train_images_per_s"] > 0


def test_a_cifar_run_reads_the_binary_files_and_learns(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar-10-batches-bin"
    for f in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        labels = rng.integers(0, 2, 40)
        imgs = np.where(labels[:, None, None, None] == 1, 200, 40).astype(np.uint8)  # bright vs dark
        imgs = np.broadcast_to(imgs, (40, 3, 32, 32)) + rng.integers(0, 30, (40, 3, 32, 32)).astype(np.uint8)
        write_cifar_file(folder / f, imgs, labels)
    cfg = VisionConfig(dataset="cifar10", data_dir=str(tmp_path), patch=8, dim=16, depth=1, num_heads=2,
                       ffn_dim=16, epochs=3, warmup_epochs=1, batch_size=32, lr=3e-3, folds=5, seed=1)
    out = run_vision(cfg)
    assert out["metrics"]["test_images"] == 40 and out["metrics"]["train_images"] == 160
    assert out["metrics"]["test_acc"] >= 0.9  # brightness separates the classes


def test_bf16_autocast_runs_and_precision_is_keyed_only_when_set():
    import hashlib
    import json

    from poolwise.runner import RunSpec

    out = run_vision(VisionConfig(**TINY, pooler="adapool-mean", canvas=28, precision="bf16"))
    assert math.isfinite(out["history"][0]["train_loss"]) and 0 <= out["metrics"]["test_acc"] <= 1
    with pytest.raises(ValueError, match="precision must be 'fp32' or 'bf16'"):
        VisionConfig(precision="fp16")
    spec = RunSpec("adapool-vision", {"pooler": "mean"})
    params = {k: v for k, v in spec.params.items() if k != "precision"}  # a run stored before the field
    blob = json.dumps({"task": "adapool-vision", "params": params}, sort_keys=True, default=str)
    assert spec.key == hashlib.sha256(blob.encode()).hexdigest()[:20]
    assert RunSpec("adapool-vision", {"pooler": "mean", "precision": "bf16"}).key != spec.key
