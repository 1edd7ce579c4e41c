// `promptcot export` of a sharded trainer's checkpoint: the ranks' HF copy (one safetensors file per rank and
// its index) is the model; the DCP shards (a directory) and the per-rank RNG files are trainer state.
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { exportCheckpoint } from "../src/cli/export.js";

const root = mkdtempSync(join(tmpdir(), "pcot-export-sharded-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe("export of a sharded checkpoint", () => {
  it("copies the ranks' HF files and leaves the DCP shards and per-rank RNG behind", () => {
    const src = join(root, "step-2");
    mkdirSync(join(src, "dcp"), { recursive: true });
    const model = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json", "config.json", "generation_config.json", "tokenizer.json"];
    for (const f of [...model, "rng-0.pt", "rng-1.pt", "worker_meta.json", "dcp/__0_0.distcp", "dcp/.metadata"]) writeFileSync(join(src, f), "{}");
    const files = exportCheckpoint(src, join(root, "out"));
    expect(files).toEqual([...model].sort());
    expect(readdirSync(join(root, "out"))).not.toContain("dcp");
  });
});
