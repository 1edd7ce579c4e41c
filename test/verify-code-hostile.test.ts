// Hostile programs (test/fixtures/hostile/*.py, one attack each, its allowed verdicts in its header)
// against the real sandbox. Every expected output is a fresh random secret that no program can compute,
// so an AC can only mean a leak. The secret is also planted where a leaky sandbox would expose it (a
// host file, the controller's environment). Afterwards the host must hold nothing of theirs: no
// process, no socket, no file, and the loopback listener they were pointed at saw no connection.
import dgram from "node:dgram";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCodeGrader, type CodeGraderHandle } from "../src/verify/code/index.js";
import type { CodeVerdictKind } from "../src/verify/types.js";
import { descendants, filesOwnedBy, socketsOf, strays } from "./fixtures/hostile/host-state.js";

const DIR = path.join(import.meta.dirname, "fixtures", "hostile");
const NOBODY = 65534;
const MARKER = "promptcot-hostile-marker";
const WATCHED_DIRS = ["/", "/tmp", "/var/tmp", "/dev/shm", "/root", "/work", "/home", "/etc", "/run", "/usr", "/usr/bin"];

interface Fixture {
  file: string;
  attack: string;
  allowed: CodeVerdictKind[];
  code: string;
}

const fixtures: Fixture[] = fs
  .readdirSync(DIR)
  .filter((f) => f.endsWith(".py"))
  .sort()
  .map((file) => {
    const code = fs.readFileSync(path.join(DIR, file), "utf8");
    const attack = /^# attack: (.+)$/m.exec(code)?.[1] ?? "";
    const allowed = (/^# expect: (.+)$/m.exec(code)?.[1] ?? "").trim().split(/\s+/) as CodeVerdictKind[];
    return { file, attack, allowed, code };
  });

const secret = `EXPECTED-${randomUUID()}`;
let grader: CodeGraderHandle;
let tcp: net.Server;
let udp: dgram.Socket;
let tcpConnections = 0;
let udpDatagrams = 0;
let plantDir = "";
const results: Array<{ file: string; verdict: string }> = [];
const startedAt = Date.now() - 1000;

beforeAll(async () => {
  // Plant the secret where only a leaky sandbox could find it.
  plantDir = fs.mkdtempSync(path.join(os.tmpdir(), "promptcot-hostile-secret-"));
  fs.writeFileSync(path.join(plantDir, "expected.jsonl"), JSON.stringify({ tests: [{ input: "", output: secret }] }) + "\n");
  process.env.PROMPTCOT_HOSTILE_SECRET = secret;

  tcp = net.createServer((s) => {
    tcpConnections++;
    s.destroy();
  });
  await new Promise<void>((r) => tcp.listen(0, "127.0.0.1", () => r()));
  udp = dgram.createSocket("udp4");
  udp.on("message", () => udpDatagrams++);
  await new Promise<void>((r) => udp.bind(0, "127.0.0.1", () => r()));

  grader = createCodeGrader({ concurrency: 2, limits: { timeLimitMs: 1500, memoryMb: 512, sandboxMemoryMb: 1024 } });
});

afterAll(async () => {
  await grader?.close();
  tcp?.close();
  udp?.close();
  delete process.env.PROMPTCOT_HOSTILE_SECRET;
  if (plantDir) fs.rmSync(plantDir, { recursive: true, force: true });
  // The table of what each attack got, for the record.
  console.log(results.sort((a, b) => a.file.localeCompare(b.file)).map((r) => `${r.verdict.padEnd(4)} ${r.file}`).join("\n"));
});

describe("hostile programs", () => {
  it("the set has at least 30 attacks, each with an attack line and allowed verdicts", () => {
    expect(fixtures.length).toBeGreaterThanOrEqual(30);
    for (const f of fixtures) {
      expect(f.attack, f.file).not.toBe("");
      expect(f.allowed.length, f.file).toBeGreaterThan(0);
      expect(f.allowed, f.file).not.toContain("AC");
    }
  });

  for (const f of fixtures) {
    it.concurrent(`${f.file}: ${f.attack}`, async ({ expect }) => {
      const input = `${(tcp.address() as net.AddressInfo).port} ${udp.address().port}\n`;
      const v = await grader.grade({ code: f.code }, [
        { input, output: secret },
        { input, output: secret },
      ]);
      results.push({ file: f.file, verdict: v.verdict });
      expect(v.verdict).not.toBe("AC");
      expect(f.allowed, `${f.file} got ${v.verdict} (${v.reason ?? ""})`).toContain(v.verdict);
      expect(v.failed_test).toBe(0);
    });
  }
});

describe("after the attacks", () => {
  it("the grader still grades the controls exactly: correct AC, wrong WA, crashing RE, slow TLE", async () => {
    const tests = [{ input: "4\n", output: "16\n" }];
    const verdicts = await Promise.all(
      ["print(int(input()) ** 2)", "print(int(input()) * 2 + 1)", "print(1 / 0)", "import time\ntime.sleep(5)\nprint(16)"].map(
        async (code) => (await grader.grade({ code }, tests)).verdict,
      ),
    );
    expect(verdicts).toEqual(["AC", "WA", "RE", "TLE"]);
  });

  it("nothing of theirs remains on the host: processes, sockets, files, connections", async () => {
    await grader.close();
    await new Promise((r) => setTimeout(r, 1000)); // a surviving daemon would phone home by now
    expect(tcpConnections).toBe(0);
    expect(udpDatagrams).toBe(0);
    expect(descendants(process.pid)).toEqual([]);
    expect(strays(NOBODY)).toEqual([]);
    expect(socketsOf(NOBODY)).toEqual([]);
    expect(filesOwnedBy(NOBODY, WATCHED_DIRS, startedAt)).toEqual([]);
    const markers = WATCHED_DIRS.flatMap((d) => {
      try {
        return fs.readdirSync(d).filter((n) => n.startsWith(MARKER)).map((n) => path.join(d, n));
      } catch {
        return [];
      }
    });
    expect(markers).toEqual([]);
    expect(leftoverCgroups()).toEqual([]);
  });
});

/** Per-sandbox cgroups this process made and did not remove. */
function leftoverCgroups(): string[] {
  const out: string[] = [];
  const walk = (dir: string, depth: number): void => {
    if (depth > 4) return;
    let names: string[] = [];
    try {
      names = fs.readdirSync(dir);
    } catch {
      return;
    }
    for (const n of names) {
      if (n.startsWith(`promptcot-sb-${process.pid}-`)) out.push(path.join(dir, n));
      else if (!n.includes(".")) walk(path.join(dir, n), depth + 1);
    }
  };
  for (const c of ["memory", "pids", ""]) walk(path.join("/sys/fs/cgroup", c), 0);
  return out;
}
