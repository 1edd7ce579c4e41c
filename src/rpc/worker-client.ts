// Thin promise/async-iterator wrapper over the generated gRPC client: deadlines on every call (Generate,
// ScoreLogProbs and TrainStep: the caller's fixed part plus the work asked, deadlines.ts), and no
// retries here: WorkerPool.run retries on the live worker or restarts it, and the caller decides whether a
// call may simply run again after a restart (onRestart: "rerun") or its whole sequence must ("abandon").
import { credentials, Metadata, type ServiceError } from "@grpc/grpc-js";
import {
  GenerateRequest,
  HealthResponse,
  InfoResponse,
  LoadCheckpointRequest,
  SaveCheckpointRequest,
  ScoreRequest,
  TrainStepRequest,
  TokenizeRequest,
  EmbedRequest,
  WorkerClient,
  type GenerateResponse,
  type LoadCheckpointResponse,
  type SaveCheckpointResponse,
  type ScoreResponse,
  type TrainStepResponse,
  type TokenizeResponse,
  type EmbedResponse,
  type DeepPartial,
} from "./gen/promptcot_worker.js";
import { WORKER_SECRET_METADATA, workerSecret } from "./worker-secret.js";

import { generateTokens, scaledDeadlineMs, scoreTokens, trainTokens } from "./deadlines.js";

export const PROTO_VERSION = "promptcot.worker.v1";
const MAX_MESSAGE = 256 * 1024 * 1024;

type Unary<Req, Res> = (
  req: Req,
  md: Metadata,
  opts: { deadline: Date },
  cb: (err: ServiceError | null, res: Res) => void,
) => unknown;

export class WorkerRpc {
  private readonly client: WorkerClient;
  readonly #secret: string; // #private: never shown when the client is inspected or logged

  /** `secret`: what every call presents (the worker refuses calls without it); default this run's. */
  constructor(readonly address: string, secret = workerSecret()) {
    this.#secret = secret;
    this.client = new WorkerClient(address, credentials.createInsecure(), {
      "grpc.max_receive_message_length": MAX_MESSAGE,
      "grpc.max_send_message_length": MAX_MESSAGE,
    });
  }

  private unary<Req, Res>(method: Unary<Req, Res>, req: Req, timeoutMs: number): Promise<Res> {
    return new Promise((resolve, reject) => {
      method.call(this.client, req, this.metadata(), { deadline: new Date(Date.now() + timeoutMs) }, (err, res) =>
        err ? reject(err) : resolve(res),
      );
    });
  }

  private metadata(): Metadata {
    const md = new Metadata();
    md.set(WORKER_SECRET_METADATA, this.#secret);
    return md;
  }

  info(timeoutMs = 10_000): Promise<InfoResponse> {
    return this.unary(this.client.info as Unary<object, InfoResponse>, {}, timeoutMs);
  }

  health(timeoutMs = 5_000): Promise<HealthResponse> {
    return this.unary(this.client.health as Unary<object, HealthResponse>, {}, timeoutMs);
  }

  /** Server-streamed completions; the iterator throws if the stream fails (e.g. the worker died). */
  async *generate(req: DeepPartial<GenerateRequest>, timeoutMs: number): AsyncGenerator<GenerateResponse> {
    const call = this.client.generate(GenerateRequest.fromPartial(req), this.metadata(), {
      deadline: new Date(Date.now() + scaledDeadlineMs(timeoutMs, generateTokens(req))),
    });
    try {
      for await (const msg of call) yield msg as GenerateResponse;
    } finally {
      call.cancel();
    }
  }

  score(req: DeepPartial<ScoreRequest>, timeoutMs: number): Promise<ScoreResponse> {
    return this.unary(this.client.scoreLogProbs as Unary<ScoreRequest, ScoreResponse>, ScoreRequest.fromPartial(req), scaledDeadlineMs(timeoutMs, scoreTokens(req)));
  }

  trainStep(req: DeepPartial<TrainStepRequest>, timeoutMs: number): Promise<TrainStepResponse> {
    return this.unary(this.client.trainStep as Unary<TrainStepRequest, TrainStepResponse>, TrainStepRequest.fromPartial(req), scaledDeadlineMs(timeoutMs, trainTokens(req)));
  }

  saveCheckpoint(req: DeepPartial<SaveCheckpointRequest>, timeoutMs: number): Promise<SaveCheckpointResponse> {
    return this.unary(
      this.client.saveCheckpoint as Unary<SaveCheckpointRequest, SaveCheckpointResponse>,
      SaveCheckpointRequest.fromPartial(req),
      timeoutMs,
    );
  }

  loadCheckpoint(req: DeepPartial<LoadCheckpointRequest>, timeoutMs: number): Promise<LoadCheckpointResponse> {
    return this.unary(
      this.client.loadCheckpoint as Unary<LoadCheckpointRequest, LoadCheckpointResponse>,
      LoadCheckpointRequest.fromPartial(req),
      timeoutMs,
    );
  }

  /** Prompt (chat-templated) and completion token ids as the worker's own tokenizer makes them. */
  tokenize(req: DeepPartial<TokenizeRequest>, timeoutMs: number): Promise<TokenizeResponse> {
    return this.unary(this.client.tokenize as Unary<TokenizeRequest, TokenizeResponse>, TokenizeRequest.fromPartial(req), timeoutMs);
  }

  /** One L2-normalised vector per text, in request order. */
  embed(req: DeepPartial<EmbedRequest>, timeoutMs: number): Promise<EmbedResponse> {
    return this.unary(this.client.embed as Unary<EmbedRequest, EmbedResponse>, EmbedRequest.fromPartial(req), timeoutMs);
  }

  shutdown(timeoutMs = 5_000): Promise<unknown> {
    return this.unary(this.client.shutdown as Unary<object, unknown>, {}, timeoutMs);
  }

  close(): void {
    this.client.close();
  }
}

export { HealthResponse };
