"""Scores completions with a model source as loaded from scratch (no worker, no checkpoint), one item per
forward (no padding), for tests that check a run's frozen KL reference against the base model itself.

Reads JSON on stdin: {"model": SOURCE, "seed": N, "dtype": "float32", "temperature": T, "items": [[prompt_ids,
completion_ids], ...]}; prints one JSON list of per-token log-prob lists. Needs PYTHONPATH=python-workers.
"""

import json
import sys

import torch

from promptcot_worker.models import load_source


def main() -> None:
    req = json.load(sys.stdin)
    model = load_source(req["model"], int(req["seed"]), getattr(torch, req.get("dtype", "float32"))).model.eval()
    out = []
    with torch.no_grad():
        for prompt, completion in req["items"]:
            logits = model(input_ids=torch.tensor([prompt + completion])).logits[0, len(prompt) - 1 : -1].float()
            logp = torch.log_softmax(logits / float(req["temperature"]), dim=-1)
            out.append(logp[torch.arange(len(completion)), torch.tensor(completion)].tolist())
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
