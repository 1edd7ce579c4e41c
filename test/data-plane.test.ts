// The shard data plane (docs/DATA_PLANE.md): bulky sample fields live in shard files, rows point at them,
// reads give back the same records as the inline journal, a torn tail is ignored and its units redone.
import { fork } from "node:child_process";
import { appendFileSync, mkdtempSync, readFileSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { Journal } from "../src/experiment/journal.js";
import { scanShard, shardFiles } from "../src/experiment/sample-store.js";
import { decodeSection, FORMAT_VERSION, parsePayload } from "../src/experiment/shard-format.js";
import { sample } from "./data-plane.fixture.js";

const tmp = (p: string) => mkdtempSync(join(tmpdir(), `pcot-dp-${p}-`));

const plain = (rows: unknown) => JSON.parse(JSON.stringify(rows)) as unknown;

describe("shard data plane", () => {
  it("gives back the inline journal's records from get, list and iterate; rows hold no text or token ids", () => {
    const dir = tmp("eq");
    const inline = new Journal(join(dir, "inline.sqlite"), { dataPlane: "inline" });
    const sharded = new Journal(join(dir, "journal.sqlite"));
    const rows = Array.from({ length: 40 }, (_, i) => sample(i));
    for (const j of [inline, sharded]) {
      j.record(rows.slice(0, 10));
      for (const r of rows.slice(10)) j.record([r]);
      j.record([{ id: "it001/grade/x", stage: "grade", iteration: 1, result: { verdict: "correct" } }]);
    }
    expect(plain(sharded.list("rollout", 1))).toEqual(plain(inline.list("rollout", 1)));
    expect(plain([...sharded.iterate("rollout", 1, 7)])).toEqual(plain(inline.list("rollout", 1)));
    expect(plain([{ ...sharded.get<object>(rows[3]!.id) }])).toEqual(plain([rows[3]!.result]));
    expect(sharded.count("rollout", 1)).toBe(40);
    expect(sharded.count("rollout", 2)).toBe(0);
    const raw = new Database(join(dir, "journal.sqlite"), { readonly: true })
      .prepare("SELECT result FROM units WHERE stage = 'rollout'").all() as { result: string }[];
    for (const r of raw) expect(Object.keys(JSON.parse(r.result)).sort()).toEqual(
      ["$fields", "$prompt", "$shard", "$token_count", "finish_reason", "prompt_id", "prompt_opens_think", "sample", "seed"]);
    // prompts are stored once per distinct prompt, not per sample
    const records = shardFiles(join(dir, "shards"), "rollout", 1).flatMap((f) => [...scanShard(f)]);
    expect(records.filter((r) => r.meta.kind === "prompt").length).toBe(4);
    expect(records.filter((r) => r.meta.kind === "sample").length).toBe(40);
    inline.close();
    sharded.close();
  });

  it("reads a shard written by format version 1 (committed fixture) and refuses a newer version by name", () => {
    const fixture = join(__dirname, "fixtures", "shard-v1.pcs");
    const recs = [...scanShard(fixture)];
    expect(FORMAT_VERSION).toBeGreaterThanOrEqual(1);
    expect(recs.map((r) => r.meta.kind)).toEqual(["prompt", "sample", "sample", "sample"]);
    const floats = parsePayload(recs[3]!.payload).sections.get("logprobs")!;
    expect(floats.meta.enc).toBe("f32le+zlib");
    expect(decodeSection(floats.meta, floats.bytes)).toEqual([-0.5, -1.25, Math.fround(-0.1)]);
    const { sections } = parsePayload(recs[1]!.payload);
    expect(decodeSection(sections.get("text")!.meta, sections.get("text")!.bytes)).toBe("first completion \\boxed{4}");
    expect(decodeSection(sections.get("token_ids")!.meta, sections.get("token_ids")!.bytes)).toEqual([0, 127, 128, 16_383, 16_384, 151_935, 4_294_967_295]);
    const newer = join(tmp("ver"), "newer.pcs");
    const bytes = readFileSync(fixture);
    bytes.writeUInt16LE(FORMAT_VERSION + 1, 8);
    writeFileSync(newer, bytes);
    expect(() => [...scanShard(newer)]).toThrow(/shard format version \d+, this build reads 1\.\.\d+; upgrade promptcot/);
  });

  it("keeps per-token log-probs (GRPO old rows) exactly: float32 when they are, float64 otherwise", () => {
    const j = new Journal(join(tmp("old"), "journal.sqlite"));
    const f32 = Array.from({ length: 300 }, (_, i) => Math.fround(-i / 7));
    const f64 = [-1 / 3, -2.5];
    j.record([
      { id: "it001/old/t0/000", stage: "old", iteration: 1, result: { logprobs: f32 } },
      { id: "it001/old/t0/001", stage: "old", iteration: 1, result: { logprobs: f64 } },
    ]);
    expect(j.get<{ logprobs: number[] }>("it001/old/t0/000")!.logprobs).toEqual(f32);
    expect(j.get<{ logprobs: number[] }>("it001/old/t0/001")!.logprobs).toEqual(f64);
    const encs = shardFiles(j.store.root, "old", 1).flatMap((f) => [...scanShard(f)]).map((r) => r.meta.sections[0]!.enc);
    expect(encs).toEqual(["f32le+zlib", "f64le+zlib"]);
    j.close();
  });

  it("after SIGKILL mid-write and a torn tail, resume redoes exactly the units without a row; the torn tail is ignored", async () => {
    const dir = tmp("kill");
    const path = join(dir, "journal.sqlite");
    const script = join(dir, "writer.ts");
    const N = 400;
    writeFileSync(script, `
      import { Journal } from ${JSON.stringify(join(process.cwd(), "src/experiment/journal.ts"))};
      import { sample } from ${JSON.stringify(join(process.cwd(), "test/data-plane.fixture.ts"))};
      const j = new Journal(${JSON.stringify(path)});
      for (let i = 0; i < ${N}; i++) { j.record([sample(i)]); if (i === 60) process.send!("go"); }
      process.send!("done");`);
    const child = fork(script, [], { execArgv: ["--import", "tsx"], stdio: "ignore" });
    const first = await new Promise<unknown>((resolve) => child.once("message", resolve));
    expect(first).toBe("go");
    child.kill("SIGKILL");
    await new Promise((r) => child.once("exit", r));

    const [shard] = shardFiles(join(dir, "shards"), "rollout", 1);
    const before = new Journal(path);
    const done = new Set(before.list("rollout", 1).map((r) => r.id));
    before.close();
    expect(done.size).toBeGreaterThan(60);
    expect(done.size).toBeLessThan(N);
    // The crash lands inside a record: cut the file at a random byte past the last referenced record, or
    // (if the kill fell between records) leave half a record there.
    const complete = [...scanShard(shard!)];
    const lastEnd = complete.at(-1)!.offset + 8 + complete.at(-1)!.payload.length;
    if (statSync(shard!).size > lastEnd + 8) truncateSync(shard!, lastEnd + 1 + Math.floor(Math.random() * (statSync(shard!).size - lastEnd - 1)));
    else appendFileSync(shard!, readFileSync(shard!).subarray(complete[1]!.offset, complete[1]!.offset + 30));
    expect([...scanShard(shard!)].length).toBeLessThanOrEqual(complete.length);

    const j = new Journal(path);
    const redo = Array.from({ length: N }, (_, i) => sample(i)).filter((s) => !j.has(s.id));
    expect(redo.length).toBe(N - done.size);
    for (const s of redo) j.record([s]);
    const rows = j.list("rollout", 1);
    expect(plain(rows.map((r) => r.result))).toEqual(plain(rows.map((r) => sample(Number(r.id.split("/").at(-1))).result)));
    expect(rows.length).toBe(N);
    // the new session wrote exactly the redone units, in a file of its own
    const files = shardFiles(join(dir, "shards"), "rollout", 1);
    expect(files.length).toBe(2);
    const rewritten = [...scanShard(files[1]!)].filter((r) => r.meta.kind === "sample").map((r) => r.meta.key);
    expect(rewritten.sort()).toEqual(redo.map((s) => s.id).sort());
    // prompts recorded before the kill are found again (payload_prompts), not written a second time
    expect([...scanShard(files[1]!)].filter((r) => r.meta.kind === "prompt")).toEqual([]);
    j.close();
  }, 120_000);
});
