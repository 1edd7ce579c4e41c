"""The exact prompt a worker would build for a conversation: `promptcot run --dry-run` prints it.

Reads {"source", "messages": [{"role", "content"}], "template_kwargs"} as JSON on stdin and prints
{"text", "tokens"}: the prompt ids through the model's chat template (text_ops.chat_prompt_ids, as Generate and
Tokenize build them), decoded with special tokens. Loads only the tokenizer, never the weights.
"""

from __future__ import annotations

import json
import sys

from .models import load_tokenizer
from .text_ops import chat_prompt_ids


def main() -> None:
    req = json.load(sys.stdin)
    try:
        tok = load_tokenizer(req["source"])
        messages = [(m["role"], m["content"]) for m in req["messages"]]
        ids = chat_prompt_ids(tok, req["source"], messages, req.get("template_kwargs") or {})
    except (ValueError, OSError) as e:
        raise SystemExit(f"cannot template the prompt for {req['source']}: {e}") from e
    print(json.dumps({"text": tok.decode(ids, skip_special_tokens=False), "tokens": len(ids)}))


if __name__ == "__main__":
    main()
