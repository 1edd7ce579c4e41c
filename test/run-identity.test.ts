// Run identity: bad data stops `promptcot run` before anything is written, and a run directory refuses to
// resume on data or a model other than the ones it started on. Real CLI processes; no worker is started
// (every case here ends before workers would start).
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../src/config/errors.js";
import { loadExperiment } from "../src/config/load.js";
import { loadProblems, type Problem } from "../src/data/problems.js";
import { checkRunDir, prepareRunDir, snapshotPath } from "../src/experiment/run-dir.js";
import { runIdentity } from "../src/experiment/run-identity.js";

const tmp = () => mkdtempSync(join(tmpdir(), "pcot-ident-"));
const cli = (...args: string[]) => spawnSync("node", ["bin/promptcot.mjs", ...args], { encoding: "utf8" });
const row = (i: number) => JSON.stringify({ prompt: `What is ${i} + ${i}?`, answer: String(2 * i) });
const rows = (n: number) => Array.from({ length: n }, (_, i) => row(i + 1)).join("\n") + "\n";

/** An experiment over train.jsonl / heldout.jsonl in a fresh directory. */
function experiment(opts: { train?: string; heldout?: string; trainSize?: number; model?: string } = {}): { dir: string; exp: string; train: string } {
  const dir = tmp();
  const train = join(dir, "train.jsonl");
  if (opts.train !== undefined) writeFileSync(train, opts.train);
  writeFileSync(join(dir, "heldout.jsonl"), opts.heldout ?? rows(2));
  const exp = join(dir, "exp.yaml");
  writeFileSync(
    exp,
    `name: ident\nmodel:\n  source: ${opts.model ?? "tiny-random-llama"}\n` +
      `data:\n  kind: jsonl\n  train_path: train.jsonl\n  heldout_path: heldout.jsonl\n  train_size: ${opts.trainSize ?? 5}\n  heldout_size: 2\n`,
  );
  return { dir, exp, train };
}

/** Starts the run directory exactly as `promptcot run` does before it starts workers. */
function startRunDir(exp: string, runDir: string): void {
  const { config } = loadExperiment(exp);
  const problems = loadProblems(config, join(exp, ".."));
  prepareRunDir(runDir, config, runIdentity(config, join(exp, ".."), problems), problems);
}

/** Every file under dir with its size, mtime and content: equal before and after means nothing was written. */
function tree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    const p = join(e.parentPath, e.name);
    out[p] = e.isFile() ? `${statSync(p).size}@${statSync(p).mtimeMs}:${readFileSync(p, "utf8")}` : "dir";
  }
  return out;
}

describe("bad data: exit 2 naming file:line and the fix, before anything is written", () => {
  const cases: [string, { train?: string; heldout?: string; trainSize?: number; model?: string }, (f: string) => string[]][] = [
    ["invalid JSON", { train: `${row(1)}\n\n${row(2)}\n{"prompt": "x", answer: 1}\n${row(3)}\n` }, (f) => [`${f}:4: not valid JSON`]],
    ["a row without an answer", { train: `${row(1)}\n{"prompt": "What is 1 + 1?"}\n` }, (f) => [`${f}:2: row has no 'answer' field`, `{"prompt": "What is 2 + 3?", "answer": "5"}`]],
    ["a non-string answer", { train: `${row(1)}\n${row(2)}\n{"prompt": "What is 6 + 7?", "answer": 13}\n` }, (f) => [`${f}:3: 'answer' is a number (13), not a string (write it as "13")`]],
    ["a row that is not an object", { train: `[1, 2]\n` }, (f) => [`${f}:1: row is an array, not a JSON object`]],
    ["an empty prompt", { train: `{"prompt": " ", "answer": "1"}\n` }, (f) => [`${f}:1: 'prompt' is empty`]],
    ["a missing file", {}, (f) => [`${f} at 'data.train_path': file not found`, "resolves against the experiment file's directory"]],
    ["fewer rows than train_size", { train: rows(3), trainSize: 5 }, (f) => [`${f} at 'data.train_size': has 3 problem rows but data.train_size is 5; set data.train_size: 3 or add rows`]],
  ];
  for (const [what, opts, expected] of cases) {
    it(what, () => {
      const { dir, exp, train } = experiment(opts);
      const before = readdirSync(dir).sort();
      const r = cli("run", exp, "--run-dir", join(dir, "run"));
      expect(r.status, r.stderr).toBe(2);
      for (const s of expected(train)) expect(r.stderr).toContain(s);
      expect(readdirSync(dir).sort()).toEqual(before);
    });
  }

  it("a bad held-out row names the held-out file", () => {
    const { dir, exp } = experiment({ train: rows(5), heldout: `${row(1)}\n{"prompt": 5, "answer": "5"}\n` });
    const r = cli("run", exp, "--run-dir", join(dir, "run"));
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`${join(dir, "heldout.jsonl")}:2: 'prompt' is a number (5), not a string`);
    expect(existsSync(join(dir, "run"))).toBe(false);
  });

  it("a model directory that does not exist", () => {
    const { dir, exp } = experiment({ train: rows(5), model: "./no-such-model" });
    const r = cli("run", exp, "--run-dir", join(dir, "run"));
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("at 'model.source': model directory");
    expect(r.stderr).toContain("no-such-model does not exist");
    expect(existsSync(join(dir, "run"))).toBe(false);
  });
});

describe("resume checks the data and model the run started on", () => {
  it("a changed train file is refused naming the change, and nothing is written", () => {
    const { dir, exp, train } = experiment({ train: rows(6) });
    const runDir = join(dir, "run");
    startRunDir(exp, runDir);
    expect(JSON.parse(readFileSync(join(runDir, "run.json"), "utf8")).train.count).toBe(5);
    writeFileSync(train, rows(6).replace('"answer":"10"', '"answer":"11"')); // row 5 = t0004 (only the first 5 are used)
    const before = tree(runDir);
    const r = cli("run", exp, "--run-dir", runDir);
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr).toContain("train set changed: 1 problem differs (t0004: answer '10' -> '11')");
    expect(r.stderr).toContain("start a new run with --run-dir");
    expect(tree(runDir)).toEqual(before);
    expect(existsSync(join(runDir, "journal.sqlite"))).toBe(false);
    const dry = cli("run", exp, "--dry-run", "--run-dir", runDir);
    expect(dry.status).toBe(2);
    expect(dry.stdout).toMatch(/train: +5 problems from .*train\.jsonl  sha256 [0-9a-f]{12}/);
    expect(dry.stdout).toContain("run directory status: would refuse to resume: train set changed: 1 problem differs");
  });

  it("a change beyond train_size does not matter; a row added, removed or reworded inside it does", () => {
    const { dir, exp, train } = experiment({ train: rows(6) });
    const runDir = join(dir, "run");
    startRunDir(exp, runDir);
    writeFileSync(train, rows(5) + JSON.stringify({ prompt: "unused", answer: "0" }) + "\n");
    expect(cli("run", exp, "--dry-run", "--run-dir", runDir).stdout).toContain("resumes it (config, data and model match)");
    writeFileSync(train, [row(1), row(3), row(4), row(5), row(6), row(7)].join("\n"));
    const r = cli("run", exp, "--run-dir", runDir);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("train set changed: 4 problems differ (t0001: prompt 'What is 2 + 2?' -> 'What is 3 + 3?', answer '4' -> '6'; t0002:");
  });

  it("unchanged data resumes, also from a moved file with the same rows; dry-run shows the fingerprints", () => {
    const { dir, exp, train } = experiment({ train: rows(5) });
    const runDir = join(dir, "run");
    startRunDir(exp, runDir);
    const { config } = loadExperiment(exp);
    const problems = loadProblems(config, dir);
    expect(checkRunDir(runDir, config, runIdentity(config, dir, problems), problems)).toBe("resume");
    const r = cli("run", exp, "--dry-run", "--run-dir", runDir);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`train: +5 problems from ${train}  sha256 [0-9a-f]{12}`));
    expect(r.stdout).toContain("model:   tiny-random-llama (built-in; promptcot 0.1.0, torch ");
    expect(r.stdout).toContain("run directory status: resumes it");
    const elsewhere = tmp(); // the experiment and its data moved: same relative paths, same rows
    for (const f of ["exp.yaml", "train.jsonl", "heldout.jsonl"]) writeFileSync(join(elsewhere, f), readFileSync(join(dir, f)));
    const moved = cli("run", join(elsewhere, "exp.yaml"), "--dry-run", "--run-dir", runDir);
    expect(moved.status, moved.stderr).toBe(0);
    expect(moved.stdout).toContain(`train:   5 problems from ${join(elsewhere, "train.jsonl")}`);
    expect(moved.stdout).toContain("run directory status: resumes it");
  });

  it("problems that change under the same config (the generator's code) are refused", () => {
    const { dir, exp } = experiment({ train: rows(5) });
    const runDir = join(dir, "run");
    startRunDir(exp, runDir);
    const { config } = loadExperiment(exp);
    const problems = loadProblems(config, dir);
    const edited = { ...problems, heldout: problems.heldout.map((p: Problem, i) => (i === 1 ? { ...p, prompt: "What is 2 + 2 + 0?" } : p)) };
    const e = expectConfigError(() => checkRunDir(runDir, config, runIdentity(config, dir, edited), edited));
    expect(e.message).toContain("heldout set changed: 1 problem differs (h0001: prompt 'What is 2 + 2?' -> 'What is 2 + 2 + 0?')");
  });

  it("without the run's copy of its problems the change is still refused, by fingerprint", () => {
    const { dir, exp, train } = experiment({ train: rows(5) });
    const runDir = join(dir, "run");
    startRunDir(exp, runDir);
    rmSync(snapshotPath(runDir, "train"));
    writeFileSync(train, rows(4) + row(9) + "\n");
    const r = cli("run", exp, "--run-dir", runDir);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/train set changed: 5 -> 5 problems, fingerprint [0-9a-f]{12} -> [0-9a-f]{12} \(the run's copy .* is missing or altered/);
  });

  it("a model directory whose weights or tokenizer change is refused, naming the file", () => {
    const { dir, exp } = experiment({ train: rows(5), model: "" });
    const model = join(dir, "model");
    mkdirSync(model);
    writeFileSync(join(model, "config.json"), '{"model_type": "llama"}');
    writeFileSync(join(model, "tokenizer.json"), "{}");
    writeFileSync(join(model, "model.safetensors"), Buffer.alloc(64, 1));
    writeFileSync(exp, readFileSync(exp, "utf8").replace("source: \n", `source: ${model}\n`));
    const runDir = join(dir, "run");
    startRunDir(exp, runDir);
    expect(JSON.parse(readFileSync(join(runDir, "run.json"), "utf8")).model.path).toBe(model);
    expect(cli("run", exp, "--dry-run", "--run-dir", runDir).status).toBe(0);

    const t = statSync(join(model, "model.safetensors")).mtime;
    writeFileSync(join(model, "model.safetensors"), Buffer.alloc(64, 2)); // same size, new content
    utimesSync(join(model, "model.safetensors"), t, new Date(t.getTime() + 5000));
    let r = cli("run", exp, "--run-dir", runDir);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`model changed: ${model}: model.safetensors rewritten (mtime`);
    utimesSync(join(model, "model.safetensors"), t, t);
    writeFileSync(join(model, "tokenizer.json"), '{"x": 1}');
    r = cli("run", exp, "--run-dir", runDir);
    expect(r.stderr).toContain(`model changed: ${model}: tokenizer.json size 2 -> 8 bytes`);
    expect(existsSync(join(runDir, "journal.sqlite"))).toBe(false);
  });

  it("a run from before fingerprints is checked against its problem copies, then adopted", () => {
    const { dir, exp, train } = experiment({ train: rows(5) });
    const runDir = join(dir, "run");
    startRunDir(exp, runDir);
    rmSync(join(runDir, "run.json"));
    writeFileSync(train, rows(4) + row(9) + "\n");
    const { config } = loadExperiment(exp);
    let problems = loadProblems(config, dir);
    expect(expectConfigError(() => prepareRunDir(runDir, config, runIdentity(config, dir, problems), problems)).message).toContain(
      "train set changed: 1 problem differs (t0004: prompt 'What is 5 + 5?' -> 'What is 9 + 9?', answer '10' -> '18')",
    );
    expect(existsSync(join(runDir, "run.json"))).toBe(false);
    writeFileSync(train, rows(5));
    problems = loadProblems(config, dir);
    expect(prepareRunDir(runDir, config, runIdentity(config, dir, problems), problems)).toEqual({ resumed: true, state: "legacy" });
    expect(checkRunDir(runDir, config, runIdentity(config, dir, problems), problems)).toBe("resume");
  });
});

function expectConfigError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error("expected a ConfigError");
}
