// The dashboard end to end in a real browser (headless Chromium via playwright-core) over a real run
// directory written by a tiny self-play run: the run is listed, curves have one point per metrics row,
// samples show their text and verdict (model output is text, never markup), the comparison view works,
// the page follows a metrics row appended while it is open, and the journal is never written.
import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import Database from "better-sqlite3";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inlineJson } from "../src/experiment/payload.js";
import { SampleStore } from "../src/experiment/sample-store.js";
import { startRun, VALIDITY_OFF_FOR_RANDOM_MODEL } from "./helpers/run-harness.js";

const CHROMIUM = "/usr/bin/chromium";
const SHOT = resolve("test-artifacts/dashboard.png");
const SHOT_SAMPLES = resolve("test-artifacts/dashboard-samples.png");
const HOSTILE = `<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"> and 2 < 3 & "quotes"`;
const root = mkdtempSync(join(tmpdir(), "pcot-dash-"));
const runId = "tiny/run1";
const runDir = join(root, "tiny", "run1");
let server: ChildProcess | undefined;
let url = "";
let browser: Browser | undefined;
let page: Page;
let journalHash = "";

if (!existsSync(CHROMIUM)) console.warn(`dashboard test skipped: ${CHROMIUM} is absent (scripts/bootstrap.sh installs the Debian package 'chromium')`);

const sha = (f: string) => createHash("sha256").update(readFileSync(f)).digest("hex");
const metricRows = () => readFileSync(join(runDir, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);

function startDashboard(): Promise<string> {
  server = spawn("node", ["bin/promptcot.mjs", "dashboard", root, "--port", "0"], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  return new Promise((ok, fail) => {
    server!.stdout!.on("data", (b) => {
      out += b;
      const m = /dashboard: (http:\/\/127\.0\.0\.1:\d+\/)/.exec(out);
      if (m) ok(m[1]!);
    });
    server!.stderr!.on("data", (b) => (out += b));
    server!.on("exit", (code) => fail(new Error(`dashboard exited (${code}): ${out}`)));
  });
}

describe.skipIf(!existsSync(CHROMIUM))("dashboard in headless Chromium", () => {
  beforeAll(async () => {
    const r = await startRun(["test/fixtures/tiny-selfplay.yaml", "--set", "data.train_size=4", "--set", "data.heldout_size=2",
      "--set", "pairs.builder=pairs-by-length.ts#shortVsLong", "--set", 'rollout.stop=["ing"]',
      ...VALIDITY_OFF_FOR_RANDOM_MODEL, "--run-dir", runDir]).done;
    expect(r.code, r.out).toBe(0);
    // Model output is untrusted: plant markup in one completion of the (finished) run. Its text lives in a
    // shard (docs/DATA_PLANE.md): append a record with the markup and point the row at it.
    const store = new SampleStore(join(runDir, "shards"));
    const [ref] = store.put("rollout", 1, [{ key: "it001/rollout/t0000/000", kind: "sample", sections: { text: HOSTILE, token_ids: [1] } }]);
    store.close();
    const db = new Database(join(runDir, "journal.sqlite"));
    db.prepare("UPDATE units SET result = json_set(result, '$.$shard', json(?)) WHERE id = 'it001/rollout/t0000/000'").run(JSON.stringify(ref));
    db.close();
    journalHash = sha(join(runDir, "journal.sqlite"));
    url = await startDashboard();
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    server?.kill("SIGTERM");
  });

  it("lists the run with its status", async () => {
    await page.goto(url);
    const row = page.locator(`tr.run-row[data-run="${runId}"]`);
    await expect(row.textContent()).resolves.toContain("tiny-selfplay");
    expect(await row.textContent()).toContain("finished");
  });

  it("draws each metric curve with one point per metrics.jsonl row, and the stages with their units", async () => {
    await page.goto(`${url}run?run=${encodeURIComponent(runId)}`);
    const evals = metricRows().filter((r) => r.kind === "eval").length;
    const trains = metricRows().filter((r) => r.kind === "train").length;
    expect(evals).toBe(2);
    expect(await page.locator('[data-metric="eval · avg_at_k"] g.series[data-name="avg_at_k"] circle.pt').count()).toBe(evals);
    expect(await page.locator('[data-metric="train · loss"] g.series[data-name="loss"] circle.pt').count()).toBe(trains);
    expect(await page.locator('tr.stage-row[data-stage="rollout"]').textContent()).toContain("16/16");
    await page.screenshot({ path: SHOT, fullPage: true });
    console.log(`dashboard screenshot: ${SHOT}`);
  });

  it("follows a metrics row appended while the page is open", async () => {
    const before = await page.locator('[data-metric="train · loss"] circle.pt').count();
    appendFileSync(join(runDir, "metrics.jsonl"), `${JSON.stringify({ time: new Date().toISOString(), iteration: 2, kind: "train", step: 2, loss: 0.61, grad_norm: 1.2 })}\n`);
    await page.waitForFunction((n) => document.querySelectorAll('[data-metric="train · loss"] circle.pt').length === n, before + 1, { timeout: 10_000 });
    expect(await page.locator('[data-metric="train · loss"] circle.pt').count()).toBe(before + 1);
  });

  it("shows a sample's prompt, text and verdict; markup in a completion is text, not code", async () => {
    await page.goto(`${url}samples?run=${encodeURIComponent(runId)}&stage=rollout&it=1`);
    const db = new Database(join(runDir, "journal.sqlite"), { readonly: true });
    const shards = new SampleStore(join(runDir, "shards"));
    const sample = JSON.parse(inlineJson(shards, (db.prepare("SELECT result FROM units WHERE id = 'it001/rollout/t0001/002'").get() as { result: string }).result)) as { text: string };
    shards.close();
    const grade = JSON.parse((db.prepare("SELECT result FROM units WHERE id = 'it001/grade/t0001/002'").get() as { result: string }).result) as { verdict: string };
    db.close();
    const real = page.locator('[data-sample="it001/rollout/t0001/002"]');
    expect(await real.getAttribute("data-verdict")).toBe(grade.verdict);
    expect(await real.locator("pre.text").textContent()).toBe(sample.text);
    expect(await real.locator(".pill").first().textContent()).toBe(grade.verdict);
    expect(await page.locator('[data-prompt="t0001"] pre.prompt').textContent()).toBe("What is 49 + 7?");
    const hostile = page.locator('[data-sample="it001/rollout/t0000/000"]');
    expect(await hostile.locator("pre.text").textContent()).toBe(HOSTILE);
    expect(await page.locator("main script, main img").count()).toBe(0);
    expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
    await page.screenshot({ path: SHOT_SAMPLES, fullPage: false });
  });

  it("compares the held-out eval before and after training", async () => {
    await page.goto(`${url}run?run=${encodeURIComponent(runId)}`);
    await page.click("text=compare eval 0 → 1");
    const row = page.locator('tr.cmp-row[data-benchmark="heldout"]');
    const cells = await row.locator("td").allTextContents();
    expect(cells[1]).toBe("2"); // problems
    expect(cells[4]).toMatch(/pts$/);
  });

  it("never writes the journal, and binds to localhost", () => {
    expect(sha(join(runDir, "journal.sqlite"))).toBe(journalHash);
    expect(url.startsWith("http://127.0.0.1:")).toBe(true);
  });
});

mkdirSync("test-artifacts", { recursive: true });
