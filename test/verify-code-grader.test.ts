// The code grader end to end with real bubblewrap sandboxes: control programs get exactly their
// verdicts, the sandbox looks the way the design says from inside, bad input becomes "error", and a
// misbehaving sandbox (fake bwrap) is killed by the watchdog without taking the grader down.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCodeGrader, type CodeGraderHandle } from "../src/verify/code/index.js";
import type { CodeTest } from "../src/verify/types.js";
import { descendants } from "./fixtures/hostile/host-state.js";

const SUM: CodeTest[] = [
  { input: "1 2\n", output: "3\n" },
  { input: "10 20\n", output: "30\n" },
  { input: "-5 5\n", output: "0\n" },
];
const CORRECT = "a, b = map(int, input().split())\nprint(a + b)\n";

let g: CodeGraderHandle;
beforeAll(() => {
  g = createCodeGrader({ concurrency: 2, limits: { timeLimitMs: 1500, memoryMb: 256, sandboxMemoryMb: 768 } });
});
afterAll(async () => {
  await g.close();
  expect(descendants(process.pid).filter((p) => p.cmd !== "ps")).toEqual([]);
});

describe("controls get exactly their verdicts", () => {
  it("correct -> AC", async () => {
    expect(await g.grade({ code: CORRECT }, SUM)).toEqual({ verdict: "AC", failed_test: null, stderr: "" });
  });
  it("wrong -> WA at the first failing test", async () => {
    const v = await g.grade({ code: "a, b = map(int, input().split())\nprint(a + b if a > 0 else 1)\n" }, SUM);
    expect(v.verdict).toBe("WA");
    expect(v.failed_test).toBe(2);
  });
  it("crashing -> RE with the traceback tail", async () => {
    const v = await g.grade({ code: "a, b = map(int, input().split())\nprint(a + b + 0 // (a - 10))\n" }, SUM);
    expect(v).toMatchObject({ verdict: "RE", failed_test: 1 });
    expect(v.stderr).toMatch(/ZeroDivisionError/);
    expect(v.stderr).not.toMatch(/runner|child_main/);
  });
  it("slow -> TLE, and tests after a failure are not run", async () => {
    const slow = "import time\na, b = map(int, input().split())\nif a == 1: time.sleep(30)\nprint(a + b)\n";
    const many = [SUM[0]!, ...Array.from({ length: 20 }, () => ({ input: "1 2\n", output: "3\n" }))];
    const t = Date.now();
    const v = await g.grade({ code: slow }, many);
    expect(v).toMatchObject({ verdict: "TLE", failed_test: 0 });
    expect(Date.now() - t).toBeLessThan(6000); // one time limit, not 21
  });
  it("memory hog -> MLE, output flood -> OLE, syntax error -> RE", async () => {
    expect((await g.grade({ code: "x = bytearray(2 << 30)\n" }, SUM)).verdict).toBe("MLE");
    expect((await g.grade({ code: "while True: print('y' * 1000)\n" }, SUM)).verdict).toBe("OLE");
    const v = await g.grade({ code: "def f(:\n  pass\n" }, SUM);
    expect(v).toMatchObject({ verdict: "RE", failed_test: 0 });
    expect(v.stderr).toMatch(/SyntaxError/);
  });
  it("printing only the first line of a multi-line answer -> WA", async () => {
    const v = await g.grade({ code: "print(1)\n" }, [{ input: "", output: "1\n2\n3\n" }]);
    expect(v).toMatchObject({ verdict: "WA", failed_test: 0 });
  });
});

describe("programs run like `python3 main.py`", () => {
  it("takes the program from a completion's last fenced block after </think>", async () => {
    const completion = `<think>maybe \`\`\`python\nprint(0)\n\`\`\`</think>\nHere is my solution:\n\`\`\`python\n${CORRECT}\`\`\`\n`;
    expect((await g.grade({ completion }, SUM)).verdict).toBe("AC");
    expect(await g.grade({ completion: "<think>I give up" }, SUM)).toMatchObject({ verdict: "no_code", failed_test: null });
    expect((await g.grade({ completion: "just text" }, SUM)).verdict).toBe("no_code");
  });
  it("with a prompt that opened <think>: a completion that never closes it is no_code, else the code after </think> runs", async () => {
    const cutInReasoning = `Draft:
\`\`\`python
${CORRECT}\`\`\`
Now let me check the edge`;
    expect((await g.grade({ completion: cutInReasoning }, SUM)).verdict).toBe("AC"); // what the template hides
    const v = await g.grade({ completion: cutInReasoning }, SUM, { promptOpensThink: true });
    expect(v).toMatchObject({ verdict: "no_code", failed_test: null, reason: expect.stringMatching(/never closed/) });
    const closed = `Draft: \`\`\`python
print(0)
\`\`\`
</think>
\`\`\`python
${CORRECT}\`\`\`
`;
    expect((await g.grade({ completion: closed }, SUM, { promptOpensThink: true })).verdict).toBe("AC");
  });
  it("supports the usual ways of reading stdin and exiting", async () => {
    const programs = [
      "import sys\na, b = map(int, sys.stdin.read().split())\nprint(a + b)\n",
      "a, b = map(int, open(0).read().split())\nprint(a + b)\n",
      "a, b = map(int, open('/dev/stdin').read().split())\nprint(a + b)\n",
      "import sys\ninput = sys.stdin.readline\na, b = map(int, input().split())\nprint(a + b)\nexit()\n",
      "import sys\na, b = map(int, input().split())\nsys.stdout.write(str(a + b))\nsys.exit(0)\n",
      "import os\na, b = map(int, input().split())\nos.write(1, b'%d\\n' % (a + b))\n",
      // the recursion idiom: work in a thread with a big stack; output comes after the main thread ends
      "import sys, threading\nthreading.stack_size(64 << 20)\nsys.setrecursionlimit(10**6)\n" +
        "def main():\n    a, b = map(int, input().split())\n    def f(n): return 0 if n == 0 else 1 + f(n - 1)\n    print(a + b + f(20000) - 20000)\n" +
        "threading.Thread(target=main).start()\n",
      "if __name__ == '__main__':\n    a, b = map(int, input().split())\n    print(a + b)\n",
    ];
    const verdicts = await Promise.all(programs.map((code) => g.grade({ code }, SUM)));
    expect(verdicts.map((v) => v.verdict)).toEqual(programs.map(() => "AC"));
  });
  it("treats exit codes as the interpreter does", async () => {
    expect((await g.grade({ code: "print(3)\nexit(1)\n" }, [SUM[0]!])).verdict).toBe("RE");
    expect((await g.grade({ code: "import sys\nprint(3)\nsys.exit('bye')\n" }, [SUM[0]!])).verdict).toBe("RE");
    expect((await g.grade({ code: "input()\ninput()\n" }, [SUM[0]!])).verdict).toBe("RE"); // EOFError
  });
  it("gives each test a fresh process and a clean /tmp", async () => {
    const code = "import os\nprint(len(os.listdir('/tmp')))\nopen('/tmp/leftover', 'w').write('x')\n";
    expect((await g.grade({ code }, [{ input: "", output: "0" }, { input: "", output: "0" }])).verdict).toBe("AC");
  });
});

describe("the sandbox from inside", () => {
  it("is unprivileged, offline, filtered, read-only but for /tmp, with a scrubbed environment and limits", async () => {
    const probe = `
import ctypes, json, os, resource, socket
libc = ctypes.CDLL(None, use_errno=True)
traceme = (libc.ptrace(0, 0, None, None), ctypes.get_errno())
uring = (libc.syscall(425, 8, None), ctypes.get_errno())
def writable(d):
    try:
        open(os.path.join(d, 'probe'), 'w').close(); return True
    except OSError:
        return False
status = dict(l.split(':', 1) for l in open('/proc/self/status').read().splitlines() if ':' in l)
try:
    socket.create_connection(('1.1.1.1', 80), timeout=1); net = 'online'
except OSError as e:
    net = type(e).__name__
print(json.dumps({
  'uid': os.getuid(), 'gid': os.getgid(), 'euid': os.geteuid(), 'groups': os.getgroups(),
  'capeff': status['CapEff'].strip(), 'capbnd': status['CapBnd'].strip(), 'nnp': status['NoNewPrivs'].strip(),
  'env': sorted(os.environ), 'cwd': os.getcwd(), 'root': sorted(os.listdir('/')),
  'writable': [d for d in ('/', '/usr', '/dev', '/dev/shm', '/proc', '/tmp') if writable(d)],
  'ifaces': sorted(l.split(':')[0].strip() for l in open('/proc/net/dev').read().splitlines()[2:]),
  'net': net, 'hostname': os.uname().nodename, 'fds': sorted(os.listdir('/proc/self/fd')),
  'as': resource.getrlimit(resource.RLIMIT_AS), 'nproc': resource.getrlimit(resource.RLIMIT_NPROC),
  'fsize': resource.getrlimit(resource.RLIMIT_FSIZE), 'nofile': resource.getrlimit(resource.RLIMIT_NOFILE),
  'cpu': resource.getrlimit(resource.RLIMIT_CPU), 'core': resource.getrlimit(resource.RLIMIT_CORE),
  'pid': os.getpid(), 'ppid': os.getppid(),
  'seccomp': status['Seccomp'].strip(), 'traceme': traceme, 'io_uring': uring,
}))
`;
    const got = await rawStdout(probe);
    const facts = JSON.parse(got);
    expect(facts).toMatchObject({
      uid: 65534,
      gid: 65534,
      euid: 65534,
      capeff: "0000000000000000",
      capbnd: "0000000000000000",
      nnp: "1",
      env: ["HOME", "LANG", "PATH", "PWD"],
      cwd: "/tmp",
      writable: ["/tmp"],
      ifaces: ["lo"],
      hostname: "sandbox",
      fds: ["0", "1", "2", "3"], // 3 is the listdir itself
      nproc: [18, 18],
      fsize: [16 << 20, 16 << 20],
      nofile: [64, 64],
      core: [0, 0],
      ppid: 1, // the runner is the pid namespace's init
      seccomp: "2", // filter mode
      traceme: [-1, 1], // EPERM from the filter (without it PTRACE_TRACEME succeeds)
      io_uring: [-1, 1],
    });
    expect(facts.net).not.toBe("online");
    expect(facts.as).toEqual([256 << 20, 256 << 20]);
    expect(facts.cpu[0]).toBeLessThanOrEqual(3);
    expect(facts.root.sort()).toEqual(expect.arrayContaining(["dev", "proc", "tmp", "usr"]));
    for (const hostOnly of ["work", "root", "home", "etc", "run", "var"]) expect(facts.root).not.toContain(hostOnly);
  });
});

/** The raw stdout of a program run once in a sandbox (through the Sandbox class, no judging). */
async function rawStdout(code: string): Promise<string> {
  const { resolveOptions } = await import("../src/verify/code/options.js");
  const { SandboxFactory } = await import("../src/verify/code/sandbox.js");
  const { loadRunnerCode } = await import("../src/verify/code/runner-code.js");
  const o = resolveOptions({ limits: { timeLimitMs: 1500, memoryMb: 256 } });
  const { seccompFilter } = await import("../src/verify/code/seccomp.js");
  const sb = new SandboxFactory(o, loadRunnerCode(o.python), null, seccompFilter()).start();
  try {
    await sb.ready;
    expect(await sb.compile(code)).toBeNull();
    const r = await sb.run(Buffer.from(""));
    return r.stdout.toString("utf8");
  } finally {
    await sb.kill(true);
  }
}

describe("bad input is an error, never a crash", () => {
  it("rejects malformed tests and programs with a reason", async () => {
    const cases: Array<[unknown, unknown, string]> = [
      [{ code: CORRECT }, "not an array", "error"],
      [{ code: CORRECT }, [], "error"],
      [{ code: CORRECT }, [{ input: "1 2" }], "error"],
      [{ code: CORRECT }, [{ input: 1, output: "3" }], "error"],
      [{ code: CORRECT }, [null], "error"],
      [{ code: CORRECT }, [["1 2", "3"]], "error"],
      [{}, SUM, "error"],
      [{ code: 42 }, SUM, "error"],
      [{ code: "   " }, SUM, "no_code"],
    ];
    for (const [program, tests, verdict] of cases) {
      const v = await g.grade(program as { code?: string }, tests as CodeTest[]);
      expect(v.verdict, JSON.stringify([program, tests])).toBe(verdict);
      if (verdict === "error") expect(v.reason).toBeTruthy();
    }
  });
  it("handles huge strings: a test input over the limit, a program over the limit, a huge completion", async () => {
    const small = createCodeGrader({ concurrency: 1, warm: 0, maxInputBytes: 1000, maxProgramBytes: 1000 });
    try {
      expect((await small.grade({ code: CORRECT }, [{ input: "1".repeat(2000), output: "1" }])).verdict).toBe("error");
      expect((await small.grade({ code: `# ${"x".repeat(2000)}\n${CORRECT}` }, SUM)).verdict).toBe("RE");
      expect((await small.grade({ completion: "y".repeat(20_000_000) }, SUM)).verdict).toBe("no_code");
    } finally {
      await small.close();
    }
  });
  it("passes a 5 MB input and a 5 MB expected output through", async () => {
    const n = 1_000_000;
    const input = `${n}\n${"7 ".repeat(n)}\n`;
    const code = "import sys\ndata = sys.stdin.buffer.read().split()\nsys.stdout.write('\\n'.join(x.decode() for x in data[1:]))\n";
    const v = await g.grade({ code }, [{ input, output: "7\n".repeat(n) }]);
    expect(v.verdict).toBe("AC");
  });
  it("reports an unusable sandbox as error, and refuses work after close", async () => {
    const broken = createCodeGrader({ concurrency: 1, python: "/usr/bin/no-such-python3" });
    try {
      const v = await broken.grade({ code: CORRECT }, SUM);
      expect(v.verdict).toBe("error");
      expect(v.reason).toMatch(/sandbox/);
    } finally {
      await broken.close();
    }
    expect((await broken.grade({ code: CORRECT }, SUM)).verdict).toBe("error");
  });
});

describe("a sandbox that stops answering or lies", () => {
  // A stand-in for bwrap (the only way to get a runner that misbehaves: the real one is out of the
  // program's reach). Each script speaks a little of the protocol, then misbehaves.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "promptcot-fake-bwrap-"));
  fs.chmodSync(dir, 0o755);
  const fake = (name: string, body: string): string => {
    const p = path.join(dir, name);
    fs.writeFileSync(p, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
    return p;
  };
  // ready; wait for the program; "compiled"; wait for the first test's input
  const READY_AND_COMPILED = "printf 'K\\000\\000\\000\\000'; read -r _; printf 'C\\000\\000\\000\\0010'; read -r _";
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("is killed by the watchdog when it hangs (TLE), and the grader goes on", async () => {
    const hang = fake("hang.sh", `${READY_AND_COMPILED}\nexec sleep 1000`);
    const f = createCodeGrader({ concurrency: 1, warm: 0, bwrap: hang, cgroup: "off", limits: { timeLimitMs: 300 }, watchdogGraceMs: 300 });
    try {
      const t = Date.now();
      const v = await f.grade({ code: CORRECT }, SUM);
      expect(v).toMatchObject({ verdict: "TLE", failed_test: 0 });
      expect(Date.now() - t).toBeLessThan(5000);
    } finally {
      await f.close();
    }
    expect(descendants(process.pid).filter((p) => p.cmd === "sleep")).toEqual([]);
  });
  it("turns protocol violations into RE (unknown frame, oversized frame, early exit)", async () => {
    const scripts = [
      fake("junk.sh", `${READY_AND_COMPILED}\nprintf 'Zjunk'\nexec sleep 1000`),
      fake("huge.sh", `${READY_AND_COMPILED}\nprintf 'R\\377\\377\\377\\377'\nexec sleep 1000`),
      fake("dies.sh", `${READY_AND_COMPILED}\nexit 3`),
    ];
    for (const bwrap of scripts) {
      const f = createCodeGrader({ concurrency: 1, warm: 0, bwrap, cgroup: "off", limits: { timeLimitMs: 1000 } });
      try {
        const v = await f.grade({ code: CORRECT }, SUM);
        expect(v.verdict, bwrap).toBe("RE");
        expect(v.failed_test).toBe(0);
      } finally {
        await f.close();
      }
    }
  });
});

describe("concurrency", () => {
  it("grades many programs at once, each against its own tests", async () => {
    const jobs = Array.from({ length: 12 }, (_, i) => ({
      code: i % 3 === 0 ? "print(int(input()) * 2)\n" : "print(int(input()) * 2 + (1 if int(input() or 0) else 0))\n",
      tests: [{ input: `${i}\n`, output: `${2 * i}\n` }],
    }));
    const verdicts = await Promise.all(jobs.map((j) => g.grade({ code: j.code }, j.tests)));
    expect(verdicts.map((v) => v.verdict)).toEqual(jobs.map((_, i) => (i % 3 === 0 ? "AC" : "RE")));
  });
});
