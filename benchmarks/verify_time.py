"""How long ``poolwise verify`` takes on a base-size model (MPNet-base's shape: 12 layers, 768
wide, 30,527 words; random weights, since no hub is reachable), saved as a sentence-transformers
directory with mean pooling and Normalize like all-mpnet-base-v2. Prints the loading time, the
checks' time (what verify reports) and the whole command's, with JSON for the record.

    python benchmarks/verify_time.py [--json out.json] [--layers 12]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import cpu_name


def build(root: Path, layers: int) -> Path:
    """An all-mpnet-base-v2-shaped sentence-transformers directory with random weights."""
    import transformers
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Normalize
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    words = [f"w{i}" for i in range(30_000)] + ["word", "a", "the", "cat", "sat", "on", "mat", "."]
    vocab = {w: i for i, w in enumerate(["<s>", "<pad>", "</s>", "<unk>", "<mask>", *words])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="<s>:0 $A:0 </s>:0",
                                                       special_tokens=[("<s>", 0), ("</s>", 2)])
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                                unk_token="<unk>", pad_token="<pad>", cls_token="<s>",
                                                sep_token="</s>", mask_token="<mask>", model_max_length=512)
    cfg = transformers.MPNetConfig(vocab_size=len(vocab), num_hidden_layers=layers, pad_token_id=1)
    hf = root / "hf"
    transformers.MPNetModel(cfg).eval().save_pretrained(str(hf))
    fast.save_pretrained(str(hf))
    tr = Transformer(str(hf), max_seq_length=384)
    st = SentenceTransformer(modules=[tr, Pooling(768, "mean"), Normalize()], device="cpu")
    st.save(str(root / "st"))
    return root / "st"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path)
    ap.add_argument("--layers", type=int, default=12)
    args = ap.parse_args()
    from poolwise.cli import main as cli

    with tempfile.TemporaryDirectory() as tmp:
        path = build(Path(tmp), args.layers)
        out = Path(tmp) / "report.json"
        start = time.perf_counter()
        rc = cli(["verify", str(path), "--json", str(out)])
        total = time.perf_counter() - start
        report = json.loads(out.read_text())
    result = {"cpu": cpu_name(), "threads": torch.get_num_threads(), "layers": args.layers,
              "exit": rc, "checks_s": round(report["seconds"], 1), "command_s": round(total, 1)}
    print(f"\npoolwise verify on an MPNet-base-shaped sentence-transformers directory ({args.layers} "
          f"layers), "
          f"{result['cpu']}, {result['threads']} threads: checks {result['checks_s']} s, whole command "
          f"{result['command_s']} s (loading the model twice included), exit {rc}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
