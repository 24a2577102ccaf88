"""Image sets of the from-scratch vision experiment: canvases (image SNR) and the CIFAR
binary reader, on small synthetic files written in the official format."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from poolwise.data.canvas import fragments, image_snr, load_image_set, place_on_canvas
from poolwise.data.cifar import CifarFormatError, load_cifar, read_cifar_file, write_cifar_file


def test_image_snr_is_the_fraction_of_object_patches():
    assert image_snr(28, 28, 7) == 1.0
    assert image_snr(28, 56, 7) == 0.25
    assert image_snr(28, 84, 14) == pytest.approx(1 / 9)
    assert image_snr(32, 64, 4) == 0.25


def _images(n=6, side=28, c=1, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random((n, c, side, side)) + 0.1).astype(np.float32)  # never blank


def test_centre_placement_puts_the_image_intact_on_the_centre_cells():
    imgs = _images()
    out, corner = place_on_canvas(imgs, 84, 14, "centre", density=0.0)
    assert out.shape == (6, 1, 84, 84) and (corner == 2).all()  # 6x6 cells, image on cells 2..3
    assert np.array_equal(out[:, :, 28:56, 28:56], imgs)
    out[:, :, 28:56, 28:56] = 0
    assert not out.any()  # density 0: nothing else on the canvas


def test_distractors_fill_other_cells_only_and_the_same_seed_gives_the_same_canvas():
    imgs = _images()
    pool = fragments(_images(4, seed=1), 14)
    a, corner = place_on_canvas(imgs, 56, 14, "random", density=1.0, pool=pool, seed=3)
    b, corner_b = place_on_canvas(imgs, 56, 14, "random", density=1.0, pool=pool, seed=3)
    assert np.array_equal(a, b) and np.array_equal(corner, corner_b)
    cells = a.reshape(6, 1, 4, 14, 4, 14).transpose(0, 2, 4, 1, 3, 5).reshape(6, 16, 1, 14, 14)
    for i, (r, c) in enumerate(corner):
        assert np.array_equal(a[i, :, r * 14:r * 14 + 28, c * 14:c * 14 + 28], imgs[i])
        covered = {(r + dr) * 4 + c + dc for dr in (0, 1) for dc in (0, 1)}
        for cell in set(range(16)) - covered:  # every other cell is one whole fragment of the pool
            assert (np.abs(pool - cells[i, cell]).reshape(len(pool), -1).max(1) == 0).any()
    assert len({tuple(c) for c in corner}) > 1  # random spots differ between images


def test_fragments_leave_out_blank_cells():
    img = np.zeros((1, 1, 28, 28), dtype=np.float32)
    img[0, 0, :14, :14] = 1.0
    pool = fragments(img, 14)
    assert pool.shape == (1, 1, 14, 14) and pool.min() == 1.0


@pytest.mark.parametrize("kwargs,match", [
    ({"placement": "left"}, "placement must be one of"),
    ({"density": 1.5}, "density must be in"),
    ({"canvas": 50}, "canvas=50 must be >= the image side 28 and a multiple of patch=14"),
])
def test_bad_canvas_arguments_are_named(kwargs, match):
    args = {"canvas": 56, "patch": 14, **kwargs}
    with pytest.raises(ValueError, match=match):
        place_on_canvas(_images(2), args.pop("canvas"), args.pop("patch"), **args)


def test_mnist5k_holds_out_a_stratified_fifth():
    d = load_image_set("mnist5k", data_seed=0)
    assert d["train_x"].shape == (4000, 1, 28, 28) and d["test_x"].shape == (1000, 1, 28, 28)
    assert np.bincount(d["test_y"]).tolist() == [100] * 10
    assert d["train_x"].min() >= 0.0 and d["train_x"].max() <= 1.0


def _cifar_dir(tmp_path, name="cifar10", per_file=20, seed=0):
    rng = np.random.default_rng(seed)
    folder = tmp_path / ("cifar-10-batches-bin" if name == "cifar10" else "cifar-100-binary")
    files = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"] if name == "cifar10" \
        else ["train.bin", "test.bin"]
    written = {}
    for f in files:
        imgs = rng.integers(0, 256, (per_file, 3, 32, 32), dtype=np.uint8)
        labels = rng.integers(0, 10 if name == "cifar10" else 100, per_file)
        write_cifar_file(folder / f, imgs, labels, name)
        written[f] = (imgs, labels)
    return tmp_path, written


def test_cifar10_binary_files_read_back_exactly_in_order(tmp_path):
    root, written = _cifar_dir(tmp_path)
    train, test = load_cifar(root, "cifar10")
    assert train.images.shape == (100, 3, 32, 32) and train.images.dtype == np.uint8
    assert np.array_equal(train.images[20:40], written["data_batch_2.bin"][0])
    assert np.array_equal(train.labels[80:], written["data_batch_5.bin"][1])
    assert np.array_equal(test.images, written["test_batch.bin"][0])
    # channel-major pixels: byte 1 + 1024 of a record is the green value of pixel (0, 0)
    raw = np.fromfile(root / "cifar-10-batches-bin" / "test_batch.bin", dtype=np.uint8)
    assert raw[1 + 1024] == test.images[0, 1, 0, 0]


def test_cifar100_uses_the_fine_label(tmp_path):
    root, written = _cifar_dir(tmp_path, "cifar100")
    train, _ = load_cifar(root / "cifar-100-binary", "cifar100")  # the folder itself works too
    assert np.array_equal(train.labels, written["train.bin"][1]) and train.labels.max() < 100
    d = load_image_set("cifar100", str(root))
    assert d["train_x"].shape == (20, 3, 32, 32) and d["train_x"].max() <= 1.0


def test_bad_cifar_files_are_named_with_what_was_expected(tmp_path):
    root, _ = _cifar_dir(tmp_path)
    folder = root / "cifar-10-batches-bin"
    (folder / "data_batch_3.bin").unlink()
    with pytest.raises(CifarFormatError, match=r"data_batch_3.bin: missing"):
        load_cifar(root, "cifar10")
    bad = folder / "x.bin"
    bad.write_bytes(b"\x01" * 3000)
    with pytest.raises(CifarFormatError, match=r"3000 bytes is not a whole number of 3073-byte"):
        read_cifar_file(bad, "cifar10")
    bad.write_bytes(pickle.dumps({"data": [1, 2, 3]}, protocol=2))
    with pytest.raises(CifarFormatError, match=r"Python pickle .* never unpickles"):
        read_cifar_file(bad, "cifar10")
    bad.write_bytes(b"\x1f\x8b" + b"\x00" * 3071)
    with pytest.raises(CifarFormatError, match="gzip archive"):
        read_cifar_file(bad, "cifar10")
    rows = np.zeros((2, 3073), dtype=np.uint8)
    rows[:, 0] = 42  # a CIFAR-100 label in a CIFAR-10 file
    rows.tofile(bad)
    with pytest.raises(CifarFormatError, match="label 42 out of range for cifar10"):
        read_cifar_file(bad, "cifar10")
    with pytest.raises(CifarFormatError, match="not a directory"):
        load_cifar(tmp_path / "nope", "cifar10")
