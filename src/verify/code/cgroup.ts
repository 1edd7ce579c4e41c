// Optional second fence around a sandbox: a cgroup capping the memory (processes, tmpfs pages and
// kernel objects such as inodes, together), the number of tasks, and the CPU share of everything
// inside it (a thread bomb of busy loops then cannot take more than its cores from the controller).
// rlimits alone bound each process, not their sum (a fork bomb of memory hogs); a cgroup bounds the sum.
// Works with cgroup v1 (memory + pids hierarchies, as on these hybrid machines) and with v2; used only
// when the controller is root and the hierarchy is writable, otherwise the sandbox relies on rlimits.
// Cgroups are made below the controller's own cgroup so any limit placed on the controller still holds.
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";

const ROOT = "/sys/fs/cgroup";
const CFS_PERIOD_US = 100_000;

interface Hierarchy {
  /** Directory under which per-sandbox cgroups are made. */
  base: string;
  files: (memBytes: number, pids: number, cpus: number) => Array<[string, string]>;
  /** Whether the cgroup recorded an OOM kill. */
  oomKilled: (dir: string) => boolean;
}

let sequence = 0;

export class CgroupLayer {
  private constructor(private readonly hierarchies: Hierarchy[]) {}

  /** The layer, or null (with why) when cgroups cannot be used here. */
  static detect(): { layer: CgroupLayer | null; why: string } {
    if (typeof process.getuid !== "function" || process.getuid() !== 0) return { layer: null, why: "not root" };
    const own = ownCgroups();
    const hs: Hierarchy[] = [];
    if (fs.existsSync(path.join(ROOT, "cgroup.controllers"))) {
      const dir = path.join(ROOT, own.get("") ?? "/");
      const v2 = v2Hierarchy(dir);
      if (v2) hs.push(v2);
    } else {
      const mem = v1Base("memory", own);
      const pids = v1Base("pids", own);
      const cpu = v1Base("cpu", own);
      if (mem) hs.push({ base: mem, files: (m) => v1MemoryFiles(mem, m), oomKilled: v1OomKilled });
      if (pids) hs.push({ base: pids, files: (_m, p) => [["pids.max", String(p)]], oomKilled: () => false });
      if (cpu && fs.existsSync(path.join(cpu, "cpu.cfs_quota_us"))) {
        hs.push({
          base: cpu,
          files: (_m, _p, cpus) => [
            ["cpu.cfs_quota_us", String(Math.round(cpus * CFS_PERIOD_US))],
            ["cpu.cfs_period_us", String(CFS_PERIOD_US)],
          ],
          oomKilled: () => false,
        });
      }
    }
    for (const h of hs) {
      const probe = path.join(h.base, `promptcot-probe-${process.pid}`);
      try {
        fs.mkdirSync(probe);
        fs.rmdirSync(probe);
      } catch (e) {
        return { layer: null, why: `cannot create cgroups under ${h.base}: ${(e as Error).message}` };
      }
    }
    if (hs.length === 0) return { layer: null, why: "no usable memory/pids cgroup hierarchy" };
    return { layer: new CgroupLayer(hs), why: "" };
  }

  /** Make the cgroups of one sandbox. Throws when the kernel refuses. */
  create(memBytes: number, pids: number, cpus: number): SandboxCgroup {
    // Unique per process (several graders may live in one) and across pid reuse.
    const name = `promptcot-sb-${process.pid}-${++sequence}-${randomBytes(3).toString("hex")}`;
    const dirs: string[] = [];
    try {
      for (const h of this.hierarchies) {
        const dir = path.join(h.base, name);
        fs.mkdirSync(dir);
        dirs.push(dir);
        // The first file of each hierarchy is its limit and must take; the rest are refinements.
        h.files(memBytes, pids, cpus).forEach(([file, value], i) => {
          const p = path.join(dir, file);
          try {
            fs.writeFileSync(p, value);
          } catch (e) {
            if (i === 0) throw e;
          }
        });
      }
    } catch (e) {
      for (const d of dirs) removeCgroup(d);
      throw e;
    }
    return new SandboxCgroup(dirs, this.hierarchies);
  }
}

export class SandboxCgroup {
  constructor(
    private readonly dirs: string[],
    private readonly hierarchies: Hierarchy[],
  ) {}

  /** Move a process (and so all it will start) into the cgroups. */
  enter(pid: number): void {
    for (const d of this.dirs) fs.writeFileSync(path.join(d, "cgroup.procs"), String(pid));
  }

  oomKilled(): boolean {
    return this.dirs.some((d, i) => this.hierarchies[i]!.oomKilled(d));
  }

  /** Remove the cgroups once their processes are gone (retries briefly: the last exits may lag). */
  async remove(): Promise<void> {
    for (const d of this.dirs) {
      for (let attempt = 0; attempt < 50; attempt++) {
        if (removeCgroup(d)) break;
        killAll(d);
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  }
}

function ownCgroups(): Map<string, string> {
  // "/proc/self/cgroup" lines: "id:controllers:path" ("0::path" for v2).
  const out = new Map<string, string>();
  try {
    for (const line of fs.readFileSync("/proc/self/cgroup", "utf8").split("\n")) {
      const m = /^\d+:([^:]*):(.*)$/.exec(line);
      if (!m) continue;
      for (const c of m[1]!.split(",")) out.set(c, m[2]!);
    }
  } catch {
    // no /proc: no cgroups
  }
  return out;
}

function v1Base(controller: string, own: Map<string, string>): string | null {
  const mount = path.join(ROOT, controller);
  if (!fs.existsSync(path.join(mount, "cgroup.procs"))) return null;
  const dir = path.join(mount, own.get(controller) ?? "/");
  return fs.existsSync(dir) ? dir : mount;
}

function v1MemoryFiles(_base: string, memBytes: number): Array<[string, string]> {
  // memsw must stay >= the memory limit, so it is written after it.
  return [
    ["memory.limit_in_bytes", String(memBytes)],
    ["memory.memsw.limit_in_bytes", String(memBytes)],
    ["memory.swappiness", "0"],
  ];
}

function v1OomKilled(dir: string): boolean {
  try {
    const text = fs.readFileSync(path.join(dir, "memory.oom_control"), "utf8");
    const m = /oom_kill (\d+)/.exec(text);
    if (m) return Number(m[1]) > 0;
    return Number(fs.readFileSync(path.join(dir, "memory.failcnt"), "utf8")) > 0;
  } catch {
    return false;
  }
}

function v2Hierarchy(dir: string): Hierarchy | null {
  try {
    const controllers = fs.readFileSync(path.join(dir, "cgroup.subtree_control"), "utf8");
    if (!/\bmemory\b/.test(controllers) || !/\bpids\b/.test(controllers)) return null;
  } catch {
    return null;
  }
  return {
    base: dir,
    files: (m, p, cpus) => [
      ["memory.max", String(m)],
      ["memory.swap.max", "0"],
      ["pids.max", String(p)],
      ["cpu.max", `${Math.round(cpus * CFS_PERIOD_US)} ${CFS_PERIOD_US}`],
    ],
    oomKilled: (d) => {
      try {
        const m = /oom_kill (\d+)/.exec(fs.readFileSync(path.join(d, "memory.events"), "utf8"));
        return m ? Number(m[1]) > 0 : false;
      } catch {
        return false;
      }
    },
  };
}

function removeCgroup(dir: string): boolean {
  try {
    fs.rmdirSync(dir);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "ENOENT";
  }
}

function killAll(dir: string): void {
  try {
    for (const pid of fs.readFileSync(path.join(dir, "cgroup.procs"), "utf8").split("\n")) {
      if (pid.trim()) {
        try {
          process.kill(Number(pid), "SIGKILL");
        } catch {
          // already gone
        }
      }
    }
  } catch {
    // cgroup gone
  }
}
