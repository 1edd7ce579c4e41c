// A sharded trainer (workers.trainer_ranks = N > 1) is one pool worker made of N rank processes: the pool's
// trainer is rank 0, and it starts, stops and kills ranks 1..N-1 with itself. Every call that touches the
// model goes to every rank (SPMD: the ranks' collectives must line up) and rank 0's answer is the group's.
// A rank that dies fails the group, so the pool's retry-then-restart logic restarts all N from the current
// checkpoint (docs/WORKER.md "Sharded trainer").
import { createServer } from "node:net";
import type { DeepPartial, GenerateRequest, GenerateResponse, HealthResponse } from "../rpc/gen/promptcot_worker.js";
import { HealthResponse_Status } from "../rpc/gen/promptcot_worker.js";
import { WorkerRpc } from "../rpc/worker-client.js";
import { LocalWorker } from "./local-launcher.js";

// Codes every rank raises alike before its first collective (bad input, missing or existing checkpoint),
// so the ranks are still in step; anything else may leave a rank inside a collective.
const IN_STEP = new Set([3, 5, 6, 9]); // INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION

/** Ranks 1..N-1 of the group whose rank 0 is `leader`. */
export class RankPeers {
  readonly ranks: LocalWorker[];
  private port = 0;

  constructor(readonly leader: LocalWorker, readonly world: number) {
    this.ranks = Array.from(
      { length: world - 1 },
      (_, i) => new LocalWorker(`${leader.id}-rank${i + 1}`, { ...leader.spec, trainerRanks: 1 }, leader.index, i + 1),
    );
  }

  get alive(): boolean {
    return this.ranks.every((r) => r.alive);
  }

  /** torch.distributed's rendezvous for rank `rank`; a fresh port per (re)start of the group. */
  env(rank: number): Record<string, string> {
    return { RANK: String(rank), WORLD_SIZE: String(this.world), MASTER_ADDR: "127.0.0.1", MASTER_PORT: String(this.port) };
  }

  async pickPort(): Promise<void> {
    this.port = await freePort();
    for (const [i, r] of this.ranks.entries()) r.rankEnv = this.env(i + 1);
  }

  start(checkpoint?: string): Promise<void> {
    return Promise.all(this.ranks.map((r) => r.start(checkpoint))).then(() => undefined);
  }

  async stop(): Promise<void> {
    await Promise.all(this.ranks.map((r) => r.stop()));
  }

  kill(): void {
    for (const r of this.ranks) r.kill();
  }

  anyExitedWithin(ms: number): Promise<boolean> {
    return Promise.all(this.ranks.map((r) => r.exitedWithin(ms))).then((gone) => gone.some(Boolean));
  }

  tail(): string {
    return this.ranks.map((r) => `[${r.id}]\n${r.tail()}`).join("\n");
  }

  rpc(leader: WorkerRpc): GroupRpc {
    return new GroupRpc(leader, this.ranks.map((r) => r.rpc!), () => {
      this.leader.kill();
      this.kill();
    });
  }
}

/**
 * The group's client: rank 0's address for what needs no model (Info, Tokenize), every rank for the rest.
 * When a rank fails with an error the ranks do not all raise before their collectives, the group is killed
 * (the others may be waiting in a collective forever) and the pool restarts it.
 */
export class GroupRpc extends WorkerRpc {
  constructor(private readonly lead: WorkerRpc, private readonly others: WorkerRpc[], private readonly killGroup: () => void) {
    super(lead.address);
  }

  private async all<T>(call: (rpc: WorkerRpc) => Promise<T>): Promise<T> {
    try {
      const [first] = await Promise.all([call(this.lead), ...this.others.map(call)]);
      return first as T;
    } catch (err) {
      if (!IN_STEP.has((err as { code?: number }).code ?? -1)) this.killGroup();
      throw err;
    }
  }

  override async health(timeoutMs = 5_000): Promise<HealthResponse> {
    const all = await Promise.all([this.lead, ...this.others].map((r) => r.health(timeoutMs)));
    const draining = all.find((h) => h.status === HealthResponse_Status.DRAINING);
    return draining ?? all[0]!;
  }

  override score(...a: Parameters<WorkerRpc["score"]>) {
    return this.all((r) => r.score(...a));
  }

  override trainStep(...a: Parameters<WorkerRpc["trainStep"]>) {
    return this.all((r) => r.trainStep(...a));
  }

  override saveCheckpoint(...a: Parameters<WorkerRpc["saveCheckpoint"]>) {
    return this.all((r) => r.saveCheckpoint(...a));
  }

  override loadCheckpoint(...a: Parameters<WorkerRpc["loadCheckpoint"]>) {
    return this.all((r) => r.loadCheckpoint(...a));
  }

  /** Embed runs the base model outside the root module's forward, where FSDP has not gathered the
   *  embeddings; embeddings come from rollout workers (or a single-rank trainer). */
  override embed(): Promise<never> {
    return Promise.reject(new Error("Embed is not served by a sharded trainer (workers.trainer_ranks > 1); ask a rollout worker"));
  }

  override tokenize(...a: Parameters<WorkerRpc["tokenize"]>) {
    return this.lead.tokenize(...a);
  }

  /** Every rank decodes the same samples (same weights, prompts, seeds: same collectives); rank 0's stream
   *  is the answer, the others are drained alongside. */
  override async *generate(req: DeepPartial<GenerateRequest>, timeoutMs: number): AsyncGenerator<GenerateResponse> {
    const drains = this.others.map(async (r) => {
      for await (const _ of r.generate(req, timeoutMs)) void _;
    });
    let failed: unknown;
    const watch = Promise.all(drains).catch((err: unknown) => {
      failed = err;
      this.killGroup(); // a rank's decode failed: rank 0 would wait in a collective
    });
    try {
      for await (const msg of this.lead.generate(req, timeoutMs)) {
        if (failed) throw failed;
        yield msg;
      }
      await watch;
      if (failed) throw failed;
    } catch (err) {
      if (!IN_STEP.has((err as { code?: number }).code ?? -1)) this.killGroup();
      throw err;
    }
  }

  override async shutdown(timeoutMs = 5_000): Promise<unknown> {
    return Promise.all([this.lead, ...this.others].map((r) => r.shutdown(timeoutMs)));
  }

  override close(): void {
    for (const r of [this.lead, ...this.others]) r.close();
    super.close();
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === "object" && addr ? resolve(addr.port) : reject(new Error("no free port"))));
    });
  });
}
