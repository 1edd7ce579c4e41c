"""A toy Qwen3-MoE (the 30B-A3B architecture at toy size) on SmolLM2's tokenizer, for CPU tests and the GPU check."""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM, Qwen3MoeConfig

from promptcot_worker.models import LoadedModel, load_source


def tiny_qwen3_moe(dtype: torch.dtype = torch.float32, seed: int = 0, experts: int = 8) -> LoadedModel:
    tokenizer = load_source("tiny-random-llama", seed, torch.float32).tokenizer
    cfg = Qwen3MoeConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, moe_intermediate_size=32,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16, num_experts=experts,
        num_experts_per_tok=2, decoder_sparse_step=1, norm_topk_prob=True, router_aux_loss_coef=0.01,
        max_position_embeddings=2048, tie_word_embeddings=False,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg).to(dtype)
    return LoadedModel(model, tokenizer, "tiny-random-qwen3-moe")
