"""Writes a real tokenized corpus for bench/controller-scale.ts: the repo's docs and sources, tokenized with
SmolLM2's tokenizer (49,152-token vocabulary). Random ids do not compress; real token streams do, so the
bytes-per-token figure needs real text. Output: JSON {"tokens": [[id, piece], ...]} (piece = decoded text)."""
import json, pathlib, sys
from transformers import AutoTokenizer

root, model, out = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
tok = AutoTokenizer.from_pretrained(model)
files = sorted([*root.glob("docs/*.md"), *root.glob("src/**/*.ts"), *root.glob("python-workers/promptcot_worker/*.py")])
ids = []
for f in files:
    ids.extend(tok(f.read_text(errors="replace"))["input_ids"])
pieces = {i: tok.decode([i]) for i in set(ids)}
pathlib.Path(out).write_text(json.dumps({"tokenizer": model, "tokens": [[i, pieces[i]] for i in ids]}))
print(f"{len(ids)} tokens from {len(files)} files, {len(pieces)} distinct ids")
