import { Type, type Static } from '@sinclair/typebox';
import { streamEndpoint, unaryEndpoint } from '@dynamo-ts/sdk';

/**
 * The wire contracts of the serving graph, each declared once as a TypeBox schema: the JSON
 * schema that validates it on arrival and the TypeScript type derived from it. Wire names are
 * snake_case (JSON on the request and event planes); the TypeScript APIs of this package are
 * camelCase.
 */

const TokenId = Type.Integer({ minimum: 0, maximum: 4294967295 });
/** Token ids; bounded so one message cannot ask for unbounded work. */
const TokenIds = Type.Array(TokenId, { maxItems: 4_194_304 });
const RequestId = Type.String({ minLength: 1, maxLength: 256 });
const InstanceId = Type.String({ minLength: 1, maxLength: 64 });

/** Why a generation ended: `stop` (the engine's end, or a stop condition), `length` (`max_tokens`). */
export const WireFinishReason = Type.Union([Type.Literal('stop'), Type.Literal('length')]);
/** Why a generation ended. */
export type WireFinishReason = Static<typeof WireFinishReason>;

/** Sampling parameters a request may carry to the engine (engines that cannot honour one ignore it). */
export const SamplingFields = {
  /** 0 = greedy (deterministic). */
  temperature: Type.Optional(Type.Number({ minimum: 0, maximum: 100 })),
  top_p: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1 })),
  seed: Type.Optional(Type.Integer({ minimum: 0, maximum: 4294967295 })),
};

/** One turn of a chat conversation: its role and its text (bounded: a turn of at most 1 MiB). */
export const ChatTurn = Type.Object({
  role: Type.String({ minLength: 1, maxLength: 32 }),
  content: Type.String({ maxLength: 1_048_576 }),
});
/** One turn of a chat conversation. */
export type ChatTurn = Static<typeof ChatTurn>;

/** Most turns one chat request may carry to the Processor. */
export const MAX_CHAT_TURNS = 1024;

/** Processor `generate` request: the frontend's `/generate` body, plus what a resumed stream sends. */
export const LlmRequest = Type.Object({
  /** The text encoded raw; for a chat, the last user message (used when the tokenizer has no chat template). */
  prompt: Type.String(),
  /**
   * A chat's whole conversation, rendered by the tokenizer's chat template (with the generation
   * prompt) when it has one; absent for completions and `/generate`, whose prompt is encoded raw.
   */
  messages: Type.Optional(Type.Array(ChatTurn, { minItems: 1, maxItems: MAX_CHAT_TURNS })),
  request_id: RequestId,
  /** Generate at most this many tokens in all. */
  max_tokens: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_048_576 })),
  /** The model asked for (the frontend checks that it is served). */
  model: Type.Optional(Type.String({ maxLength: 256 })),
  /**
   * Resume a stream that broke between the caller and a Processor: the token ids of the items the
   * caller already received, concatenated. Generation continues after them.
   */
  generated_token_ids: Type.Optional(TokenIds),
  ...SamplingFields,
});
/** Processor `generate` request. */
export type LlmRequest = Static<typeof LlmRequest>;

/** Processor `generate` item: a piece of the output text with running token counts. */
export const LlmEvent = Type.Object({
  worker_output: Type.String(),
  request_id: Type.String(),
  /** Prompt length in tokens. */
  prompt_tokens: Type.Integer({ minimum: 0 }),
  /** Output tokens so far (cumulative). */
  completion_tokens: Type.Integer({ minimum: 0 }),
  /** The tokens this item's text decodes from (what a resumed stream sends back). */
  token_ids: TokenIds,
  /** On the last item only. */
  finish_reason: Type.Optional(WireFinishReason),
});
/** Processor `generate` item. */
export type LlmEvent = Static<typeof LlmEvent>;

/** Router `route` request: the prompt's tokens and the workers not to pick. */
export const RouteQuery = Type.Object({
  token_ids: TokenIds,
  request_id: RequestId,
  /** Workers not to pick (they failed this request before its first token). */
  exclude_workers: Type.Optional(Type.Array(InstanceId, { maxItems: 1024 })),
});
/** Router `route` request. */
export type RouteQuery = Static<typeof RouteQuery>;

/** Router `route` answer. */
export const RouteResult = Type.Object({
  worker_id: InstanceId,
  /** Leading prompt blocks the chosen worker holds. */
  overlap_blocks: Type.Integer({ minimum: 0 }),
  /** The worker's name, for logs. */
  worker_name: Type.Optional(Type.String()),
});
/** Router `route` answer. */
export type RouteResult = Static<typeof RouteResult>;

/** Worker `generate` request. */
export const EngineRequestWire = Type.Object({
  request_id: RequestId,
  /** The prompt. */
  token_ids: TokenIds,
  /**
   * Tokens already generated for this request by a worker that died mid-stream (migration) or
   * received by a client before its stream broke: continue after them; they count against
   * `max_tokens`.
   */
  generated_token_ids: Type.Optional(TokenIds),
  /** Generate at most this many tokens in all (including `generated_token_ids`). */
  max_tokens: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_048_576 })),
  ...SamplingFields,
});
/** Worker `generate` request. */
export type EngineRequestWire = Static<typeof EngineRequestWire>;

/** Worker `generate` item: the next generated token(s); `finish_reason` on the last one. */
export const EngineOutputWire = Type.Object({
  token_ids: TokenIds,
  finish_reason: Type.Optional(WireFinishReason),
});
/** Worker `generate` item. */
export type EngineOutputWire = Static<typeof EngineOutputWire>;

/** Published by a Processor so the routers release the load they counted for a request. */
export const RequestProgress = Type.Object({
  request_id: RequestId,
  worker_id: InstanceId,
  status: Type.Union([Type.Literal('first_token'), Type.Literal('finished')]),
});
/** Published by a Processor so the routers release the load they counted for a request. */
export type RequestProgress = Static<typeof RequestProgress>;

/** A prefill job, as pushed by a decode worker onto the prefill queue. */
export const PrefillJob = Type.Object({
  request_id: RequestId,
  /** Instance id of the decode worker (its KV-transfer metadata key). */
  engine_id: InstanceId,
  token_ids: TokenIds,
  /** Epoch ms after which the decode worker prefills locally; a job pulled later is dropped. */
  deadline: Type.Number(),
  /** Event-plane subject the completion goes to. */
  reply_to: Type.String({ minLength: 1, maxLength: 512 }),
  /** The request's trace (W3C `traceparent`/`tracestate`), when it is traced. */
  trace: Type.Optional(
    Type.Record(Type.String({ maxLength: 64 }), Type.String({ maxLength: 1024 }), { maxProperties: 8 }),
  ),
});
/** A prefill job. */
export type PrefillJob = Static<typeof PrefillJob>;

/**
 * A prefilled KV state handed to the decode engine through a directory both workers share: the
 * file's name in it (never a path), its size and SHA-256, the tokens it holds, and a fingerprint
 * of the model that wrote it. The decode engine checks all of it before loading (untrusted input).
 */
export const KvStateRef = Type.Object({
  file: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$' }),
  bytes: Type.Integer({ minimum: 1 }),
  tokens: Type.Integer({ minimum: 1, maximum: 4_194_304 }),
  sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
  model: Type.String({ minLength: 1, maxLength: 128 }),
});
/** A prefilled KV state handed over through a shared directory. */
export type KvStateRef = Static<typeof KvStateRef>;

/** Sent by a prefill worker to the job's `reply_to` when its prefill is done. */
export const PrefillDone = Type.Object({
  request_id: RequestId,
  engine_id: InstanceId,
  prefill_worker: Type.String({ maxLength: 256 }),
  /** The prefilled state, when the engine hands it over (else the decode engine prefills again). */
  kv_state: Type.Optional(KvStateRef),
});
/** Sent by a prefill worker when a prefill is done. */
export type PrefillDone = Static<typeof PrefillDone>;

/** What a decode worker registers for prefill workers (the seed's NIXL metadata). */
export const KvTransferMetadata = Type.Object({
  engine_id: InstanceId,
  name: Type.String({ maxLength: 256 }),
  block_size: Type.Integer({ minimum: 1 }),
  model: Type.String({ maxLength: 256 }),
});
/** What a decode worker registers for prefill workers. */
export type KvTransferMetadata = Static<typeof KvTransferMetadata>;

/** The Processor's endpoints. */
export const ProcessorApi = { generate: streamEndpoint(LlmRequest, LlmEvent) };
/** The Router's endpoint: one decision per call. */
export const RouterApi = { route: unaryEndpoint(RouteQuery, RouteResult) };
/** A worker's endpoint. */
export const WorkerApi = { generate: streamEndpoint(EngineRequestWire, EngineOutputWire) };

/** Name of the prefill work queue (stream `DYNAMO_{NS}_PREFILL`). */
export const PREFILL_QUEUE = 'prefill';
/** Event topic of the Processor's {@link RequestProgress} messages. */
export const PROGRESS_TOPIC = 'request_status';
/** Event topic of a worker component's KV events. */
export const KV_EVENTS_TOPIC = 'kv_events';
/** Event topic of a worker component's load metrics. */
export const LOAD_METRICS_TOPIC = 'load_metrics';
