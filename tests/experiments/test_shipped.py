"""The backbone weights that ship with poolwise: complete for the study's defaults, used only
while they match their recipe and their SHA-256, and never when switched off."""

import dataclasses
import shutil

import pytest
import torch

from poolwise.experiments import pretrain as pt
from poolwise.experiments import shipped
from poolwise.experiments.frozen_tasks import FROZEN_TASKS


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POOLWISE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(shipped.ENV, raising=False)

    def no_pretraining(*a, **k):
        raise AssertionError("pretrained although a shipped copy should have been used")

    monkeypatch.setattr(pt, "pretrain", no_pretraining)
    return tmp_path / "cache"


def test_every_default_backbone_of_the_study_ships_and_matches_its_recipe():
    defaults = {t.backbones[0] for t in FROZEN_TASKS.values() if t.name != "text-csv"}
    assert {f"{n}-seed0" for n in defaults} == set(shipped.manifest())
    for name in defaults:
        recipe = pt.RECIPES[name]
        assert shipped.usable(name, 0, recipe.config(), recipe.steps), name  # reship after a recipe change
        assert shipped.sha256(shipped.SHIPPED_DIR / f"{name}-seed0" / "model.safetensors") == \
            shipped.manifest()[f"{name}-seed0"]


def test_an_empty_cache_starts_from_the_shipped_copy_without_pretraining(cache):
    assert not pt.needs_pretraining("patchts-gunpoint")
    lines = []
    model, ident = pt.load_backbone("patchts-gunpoint", log=lines.append)
    assert ident == f"patchts-gunpoint-seed0-{shipped.manifest()['patchts-gunpoint-seed0'][:12]}"
    assert (cache / "backbones" / "patchts-gunpoint-seed0" / "model.safetensors").is_file()
    assert "shipped weights" in lines[0]
    patches = torch.randn(2, 5, model.cfg.in_dim)
    tokens, mask = model(patches, torch.ones(2, 5, dtype=torch.bool))
    assert tokens.shape == (2, 5, model.cfg.dim) and torch.isfinite(tokens).all() and mask.all()
    assert pt.needs_pretraining("patchts-gunpoint-s")  # only the middle size ships


def test_switched_off_changed_recipe_or_other_seed_means_pretraining_here(cache, monkeypatch):
    monkeypatch.setenv(shipped.ENV, "0")
    assert pt.needs_pretraining("vit-mim")
    with pytest.raises(AssertionError, match="pretrained although"):
        pt.backbone_ident("vit-mim")
    monkeypatch.setenv(shipped.ENV, "1")
    assert not pt.needs_pretraining("vit-mim") and pt.needs_pretraining("vit-mim", seed=1)
    monkeypatch.setitem(pt.RECIPES, "vit-mim", dataclasses.replace(pt.RECIPES["vit-mim"], steps=1601))
    assert pt.needs_pretraining("vit-mim")


def test_a_shipped_file_that_does_not_match_its_digest_is_refused(cache, tmp_path, monkeypatch):
    copy = tmp_path / "shipped"
    shutil.copytree(shipped.SHIPPED_DIR, copy)
    weights = copy / "patchts-forecast-seed0" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    monkeypatch.setattr(shipped, "SHIPPED_DIR", copy)
    monkeypatch.setattr(shipped, "MANIFEST", copy / "MANIFEST.json")
    with pytest.raises(ValueError, match="does not match its SHA-256"):
        pt.backbone_ident("patchts-forecast")
    assert not (cache / "backbones" / "patchts-forecast-seed0").exists()


def test_a_cached_backbone_that_differs_from_the_shipped_one_is_named(cache):
    folder = cache / "backbones" / "patchts-osuleaf-seed0"
    pt.backbone_ident("patchts-osuleaf")  # the shipped copy: nothing to say
    lines = []
    pt.backbone_ident("patchts-osuleaf", log=lines.append)
    assert lines == []
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # as if pretrained on this machine
    weights.write_bytes(bytes(data))
    ident = pt.backbone_ident("patchts-osuleaf", log=lines.append)
    assert len(lines) == 1 and "not the shipped one" in lines[0] and ident.split("-")[-1] in lines[0]
