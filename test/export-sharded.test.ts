// `promptcot export` of a sharded trainer's checkpoint: the weights are streamed out of the DCP shards (fp32
// masters, cast to config.json's dtype) by promptcot_worker/dcp_export.py, not copied from the ranks' HF copy;
// the DCP directory and the per-rank RNG files are trainer state. The 2-rank case (real FSDP ranks over gloo)
// is python-workers/tests/test_sharded_trainer.py::test_export_streams_the_dcp_shards_as_hf_safetensors.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { exportCheckpoint } from "../src/cli/export.js";
import { pythonEnv, pythonPath } from "../src/cluster/python-env.js";

const root = mkdtempSync(join(tmpdir(), "pcot-export-sharded-"));
let failed = false;
afterAll(() => (failed ? process.stderr.write(`kept ${root}\n`) : rmSync(root, { recursive: true, force: true })));

const py = (code: string, ...args: string[]) => {
  const r = spawnSync(pythonPath(), ["-c", code, ...args], { env: pythonEnv(), encoding: "utf8", timeout: 120_000 });
  if (r.status !== 0) throw new Error(r.stderr);
  return r.stdout;
};

// A tiny Llama: its fp32 weights as DCP (one process writes it, as each rank writes its shards), and an HF copy in
// bf16 whose tensors are those weights cast, as the ranks write it; the HF copy is deliberately stale in one tensor
// so the test sees which one the export reads.
const MAKE = `
import sys, torch, torch.distributed.checkpoint as dcp, warnings
from transformers import LlamaConfig, LlamaForCausalLM
warnings.simplefilter("ignore")
torch.manual_seed(0)
cfg = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1)
m = LlamaForCausalLM(cfg)
dcp.save({"model": dict(m.named_parameters())}, checkpoint_id=sys.argv[1] + "/dcp")
m = m.to(torch.bfloat16)
with torch.no_grad(): m.model.norm.weight.add_(1.0)
m.save_pretrained(sys.argv[1])
`;
const CHECK = `
import sys, json, torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM
src, out = sys.argv[1], sys.argv[2]
got, ref = load_file(out + "/model.safetensors"), load_file(src + "/model.safetensors")
stale = "model.norm.weight"
same = all(torch.equal(got[k], ref[k]) for k in ref if k != stale)
m = AutoModelForCausalLM.from_pretrained(out)
print(json.dumps({"names": sorted(got) == sorted(ref), "dtypes": sorted({str(t.dtype) for t in got.values()}), "same": same,
  "stale_fixed": torch.equal(got[stale], ref[stale] - 1.0), "loaded": str(m.dtype),
  "tied_ok": torch.equal(m.lm_head.weight, m.model.embed_tokens.weight) or "lm_head.weight" in got}))
`;

describe("export of a sharded checkpoint", () => {
  it("streams the weights out of the DCP shards, copies config and tokenizer, and leaves the trainer state behind", () => {
    const src = join(root, "step-2");
    try {
      py(MAKE, src);
      for (const f of ["rng-0.pt", "rng-1.pt", "worker_meta.json"]) writeFileSync(join(src, f), "{}");
      const out = join(root, "out");
      const files = exportCheckpoint(src, out);
      expect(files).toEqual(["config.json", "generation_config.json", "model.safetensors"]);
      expect(readdirSync(out)).not.toContain("dcp");
      const r = JSON.parse(py(CHECK, src, out));
      expect(r).toEqual({ names: true, dtypes: ["torch.bfloat16"], same: true, stale_fixed: true, loaded: "torch.bfloat16", tied_ok: true });
    } catch (e) {
      failed = true;
      throw e;
    }
  }, 180_000);
});
