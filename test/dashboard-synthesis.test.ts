// The dashboard over a real synthesis run (tiny random model): the sample browser shows each generation's
// provenance — concepts, rationale, the prompt model's weights, seeds, filters and dedup — as the journal
// holds it (the same records `promptcot trace` reads), and the live endpoint answers for the run.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDashboard, type Dashboard } from "../src/dashboard/server.js";
import type { GenerationRecord } from "../src/synthesis/provenance.js";
import type { ScreenRecord } from "../src/synthesis/generate.js";
import { startRun } from "./helpers/run-harness.js";

const root = mkdtempSync(join(tmpdir(), "pcot-dash-synth-"));
const runDir = join(root, "synth");
let dash: Dashboard;

const decode = (html: string) => html.replace(/&#(\d+);/g, (_, n: string) => String.fromCharCode(Number(n)));

beforeAll(async () => {
  const r = await startRun(["test/fixtures/tiny-synthesis.yaml", "--run-dir", runDir]).done;
  expect(r.code, r.out).toBe(0);
  dash = await startDashboard({ root, host: "127.0.0.1", port: 0 });
}, 300_000);

afterAll(async () => {
  await dash?.close();
});

describe("dashboard over a synthesis run", () => {
  it("shows every generation with its provenance and screening outcome from the journal", async () => {
    const db = new Database(join(runDir, "journal.sqlite"), { readonly: true });
    const gens = (db.prepare("SELECT id, result FROM units WHERE stage = 'synth/generate' ORDER BY id").all() as { id: string; result: string }[])
      .map((g) => ({ id: g.id, g: JSON.parse(g.result) as GenerationRecord }));
    const screens = new Map((db.prepare("SELECT result FROM units WHERE stage = 'synth/screen'").all() as { result: string }[])
      .map((s) => JSON.parse(s.result) as ScreenRecord).map((s) => [s.generation_unit, s]));
    db.close();
    expect(gens.length).toBeGreaterThan(0);
    const html = await (await fetch(`${dash.url}samples?run=synth&stage=synth%2Fgenerate&it=0`)).text();
    const cards = html.split('<div class="card sample generation"').slice(1);
    expect(cards).toHaveLength(gens.length);
    for (const [i, { id, g }] of gens.entries()) {
      const card = decode(cards[i]!);
      expect(card).toContain(`data-unit="${id}"`);
      if (!g.ok) {
        expect(card).toContain("unparsed");
        continue;
      }
      const s = screens.get(id)!;
      expect(card).toContain(`<pre class="text">${g.problem}</pre>`);
      expect(card).toContain(`<pre>${g.rationale}</pre>`);
      expect(card).toContain(`<td>${g.concepts.join("; ")}`);
      expect(card).toContain(`sampling ${g.sampling_seed}`);
      expect(card).toContain(`step ${g.synthesizer.step}, after ${g.synthesizer.em_iteration} EM iteration(s)`);
      expect(card).toContain(s.kept ? ">kept</span>" : ">dropped</span>");
      if (s.dedup && !s.dedup.kept) expect(card).toContain(`${s.dedup.kind} of ${s.dedup.duplicate_of}`);
    }
  });

  it("the live endpoint answers the run's version, with the fragment only when it changed", async () => {
    const first = (await (await fetch(`${dash.url}api/live?run=synth`)).json()) as { version: string; html: string };
    expect(first.html).toContain('data-stage="synth/generate"');
    const again = (await (await fetch(`${dash.url}api/live?run=synth&since=${encodeURIComponent(first.version)}`)).json()) as { version: string; html: string };
    expect(again).toEqual({ version: first.version, html: "" });
    expect((await fetch(`${dash.url}run?run=..%2F..%2Fetc`)).status).toBe(404);
  });
});
