"""Offline data for the frozen-backbone tasks: splits, text, time series, vision."""

import numpy as np
import pytest

from poolwise.data import text as text_data
from poolwise.data import timeseries as ts_data
from poolwise.data import vision as vision_data
from poolwise.data.splits import stratified_split, subsample


def test_stratified_split_partitions_and_keeps_class_shares():
    labels = np.repeat([0, 1, 2], [50, 30, 20])
    parts = stratified_split(labels, (0.7, 0.1, 0.2), seed=3)
    joined = np.concatenate(parts)
    assert sorted(joined.tolist()) == list(range(100))  # disjoint and complete
    assert [len(p) for p in parts] == [70, 10, 20]
    assert np.bincount(labels[parts[2]]).tolist() == [10, 6, 4]
    again = stratified_split(labels, (0.7, 0.1, 0.2), seed=3)
    assert all((a == b).all() for a, b in zip(parts, again))
    other = stratified_split(labels, (0.7, 0.1, 0.2), seed=4)
    assert not (parts[0] == other[0]).all()


def test_stratified_split_rejects_bad_fractions():
    with pytest.raises(ValueError, match="sum to 1"):
        stratified_split(np.zeros(10), (0.5, 0.2), seed=0)


def test_subsample_caps_and_stratifies():
    labels = np.repeat([0, 1], [80, 20])
    keep = subsample(labels, 50, seed=0)
    assert len(keep) == 50 and np.bincount(labels[keep]).tolist() == [40, 10]
    assert len(subsample(labels, 0, seed=0)) == 100


def _csv(tmp_path, text):
    path = tmp_path / "d.csv"
    path.write_text(text)
    return path


def test_load_text_csv_maps_sorted_labels(tmp_path):
    texts, labels, classes = text_data.load_text_csv(_csv(tmp_path, "text,label\na,pos\nb,neg\nc,pos\n"))
    assert texts == ["a", "b", "c"] and classes == ["neg", "pos"] and labels.tolist() == [1, 0, 1]


@pytest.mark.parametrize("body, message", [
    ("", "is empty"),
    ("words,label\na,x\nb,y\n", "no column 'text'; its columns are: words, label"),
    ("text,label\na,x\nb,x\n", "single class"),
    ("text,label\n,x\n", r"1 row\(s\) without a text or a label \(lines 2\); .*--drop-missing"),
])
def test_load_text_csv_errors(tmp_path, body, message):
    with pytest.raises(ValueError, match=message):
        text_data.load_text_csv(_csv(tmp_path, body))


def test_load_text_csv_keeps_labels_as_written(tmp_path):
    """pandas would read the class "NA" as missing and 1, 2 as floats when a row is blank."""
    _, labels, classes = text_data.load_text_csv(_csv(tmp_path, "text,label\na,NA\nb,pos\nc,NA\n"))
    assert classes == ["NA", "pos"] and labels.tolist() == [0, 1, 0]
    _, labels, classes = text_data.load_text_csv(_csv(tmp_path, "text,label\na,1\nb,2\nc,3\nd,\n"),
                                                 drop_missing=True)
    assert classes == ["1", "2", "3"] and labels.tolist() == [0, 1, 2]


def test_load_text_csv_names_blank_rows_or_drops_them(tmp_path):
    body = "text,label\na,x\n,y\nc,\nd,y\n"
    with pytest.raises(ValueError, match=r"2 row\(s\) without a text or a label \(lines 3, 4\)"):
        text_data.load_text_csv(_csv(tmp_path, body))
    texts, _, classes = text_data.load_text_csv(_csv(tmp_path, body), drop_missing=True)
    assert texts == ["a", "d"] and classes == ["x", "y"]


def test_load_text_csv_encoding(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("text,label\ncafé,a\nthé,b\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin.csv is not valid utf-8 text .*--encoding latin-1"):
        text_data.load_text_csv(path)
    texts, _, _ = text_data.load_text_csv(path, encoding="latin-1")
    assert texts == ["café", "thé"]


def test_load_text_csv_missing_file(tmp_path):
    with pytest.raises(ValueError, match="no CSV file at"):
        text_data.load_text_csv(tmp_path / "nope.csv")


def test_vocab_and_next_word_windows():
    docs = ["the cat sat on the mat .", "the dog ran ."]
    vocab = text_data.build_vocab(docs, 4)
    assert vocab == ["<unk>", "the", ".", "cat"]  # by count, ties alphabetical
    ids = text_data.encode_words(["the cat sat on the mat . the cat ran ."] * 2, vocab)
    x, lengths, y = text_data.next_word_windows(ids, 50, 2, 4, seed=0)
    for row, n, target in zip(x, lengths, y):
        assert target != 0 and (row[n:] == 0).all()
        stream = ids[0].tolist()
        starts = [s for s in range(len(stream) - n) if stream[s:s + n] == row[:n].tolist()]
        assert any(stream[s + n] == target for s in starts)  # the target is the word that follows
    again = text_data.next_word_windows(ids, 50, 2, 4, seed=0)
    assert (again[0] == x).all() and (again[2] == y).all()


def test_patchify_channel_major_with_masks():
    a = np.arange(10, dtype=np.float32).reshape(2, 5)      # 2 channels, length 5
    b = np.arange(4, dtype=np.float32).reshape(2, 2) + 100  # 2 channels, length 2
    patches, mask = ts_data.patchify([a, b], patch=2)
    assert patches.shape == (2, 3, 4)
    assert patches[0, 0].tolist() == [0, 1, 5, 6]   # channel 0 steps 0-1, then channel 1
    assert patches[0, 2].tolist() == [4, 0, 9, 0]   # tail zero-padded
    assert mask.tolist() == [[True, True, True], [True, False, False]]


def test_forecast_windows_are_standardised_by_their_context():
    series = np.linspace(0, 10, 400).astype(np.float32) + np.sin(np.arange(400)).astype(np.float32)
    xs, ys = ts_data.forecast_windows(series, 64, 8, 16, 32, seed=0, multiple=8)
    assert ys.shape == (len(xs), 8)
    for x in xs:
        assert x.shape[1] % 8 == 0 and 32 <= x.shape[1] <= 64
        assert abs(x.mean()) < 1e-4 and abs(x.std() - 1) < 1e-3


def test_ucr_variable_lengths_load():
    pytest.importorskip("aeon")
    data = ts_data.load_ucr("JapaneseVowels")
    lengths = {s.shape[1] for s in data["train"][0]}
    assert len(lengths) > 5 and data["train"][0][0].shape[0] == 12
    assert ts_data.num_classes("JapaneseVowels") == 9


def test_noisy_canvas_hides_the_digit_intact_on_the_patch_grid():
    rng = np.random.default_rng(0)
    digits = (rng.random((3, 28, 28)) > 0.7).astype(np.float32)
    out = vision_data.noisy_canvas(digits, digits[::-1], seed=1)
    assert out.shape == (3, 56, 56)
    for img, canvas in zip(digits, out):
        found = [(r, c) for r in range(0, 29, 4) for c in range(0, 29, 4)
                 if np.array_equal(canvas[r:r + 28, c:c + 28], img)]
        assert found
    assert np.array_equal(out, vision_data.noisy_canvas(digits, digits[::-1], seed=1))


def test_noisy_canvas_salt_noise_fills_about_density_of_the_cells():
    digits = np.zeros((4, 28, 28), dtype=np.float32)
    out = vision_data.noisy_canvas(digits, None, density=0.5, seed=0)
    cells = out.reshape(4, 14, 4, 14, 4).transpose(0, 1, 3, 2, 4).reshape(4, 196, 16)
    filled = (cells.sum(axis=2) > 0).mean()
    assert 0.25 < filled < 0.45  # half of the 147 non-digit cells, out of 196
    assert out.min() >= 0 and out.max() <= 1


def test_imputation_windows_hide_whole_patches_and_never_leak_them():
    from poolwise.data.timeseries import imputation_windows

    series = np.arange(64, dtype=np.float32) ** 1.5
    xs, hide, ys = imputation_windows(series, 16, 8, 4, 0.25, seed=0)
    assert len(xs) == hide.shape[0] == ys.shape[0] == 7 and xs[0].shape == (1, 16)
    assert (hide.sum(1) == 1).all()  # a quarter of 4 patches
    for x, h, y in zip(xs, hide, ys):
        steps = np.repeat(h, 4)
        assert (x[0, steps] == 0).all() and np.isnan(y[~steps]).all() and not np.isnan(y[steps]).any()
        seen = x[0, ~steps]
        assert abs(seen.mean()) < 1e-5 and abs(seen.std() - 1) < 1e-4  # standardised on observed steps only
    changed = series.copy()
    changed[np.repeat(hide[0], 4).nonzero()[0]] = 1e6  # the hidden values of the first window
    xs2, _, _ = imputation_windows(changed, 16, 8, 4, 0.25, seed=0)
    assert np.array_equal(xs2[0], xs[0])
    with pytest.raises(ValueError, match="not a multiple of the patch size 4"):
        imputation_windows(series, 18, 8, 4, 0.25, seed=0)
