/** What the hello-world services send each other (JSON on the request plane). */

/** Processor `generate` request (the frontend's `/generate` body). */
export interface ProcessorRequest {
  prompt: string;
  request_id: string;
  /** Generate at most this many tokens (OpenAI `max_tokens`). */
  max_tokens?: number;
  /** Model asked for (the frontend checks it is served; informational here). */
  model?: string;
  /**
   * Resume a stream that broke between the caller and a Processor: the tokens of the items the
   * caller already received (their `token_ids`, concatenated). Generation continues after them.
   */
  generated_token_ids?: number[];
}

/** Why a stream ended: `length` when `max_tokens` cut it. */
export type FinishReason = 'stop' | 'length';

/** Processor `generate` item: a piece of the output text, with running token counts. */
export interface ProcessorEvent {
  worker_output: string;
  request_id: string;
  /** Prompt length in tokens. */
  prompt_tokens: number;
  /** Output tokens so far (cumulative). */
  completion_tokens: number;
  /** The tokens this item's text decodes from (for resuming, see {@link ProcessorRequest}). */
  token_ids: number[];
  /** On the last item only. */
  finish_reason?: FinishReason;
}

/** Router `generate` request. */
export interface RouteRequest {
  token_ids: number[];
  request_id: string;
  /** Workers not to pick (they failed this request before its first token). */
  exclude_workers?: string[];
}

/** Router `generate` answer. */
export interface RouteDecision {
  worker_id: string;
  overlap_blocks: number;
  /** The worker's name, for logs. */
  worker_name?: string;
}

/** DummyWorker `generate` request. */
export interface WorkerRequest {
  request_id: string;
  /** The prompt. */
  token_ids: number[];
  /**
   * Tokens already generated for this request by a worker that died mid-stream (migration):
   * continue after them; they count against `max_tokens`.
   */
  generated_token_ids?: number[];
  /** Generate at most this many tokens in all (including `generated_token_ids`). */
  max_tokens?: number;
}

/** DummyWorker `generate` item: the next generated token(s); `finish_reason` on the last one. */
export interface WorkerEvent {
  token_ids: number[];
  finish_reason?: FinishReason;
}

/** Published by the Processor on its `request_status` topic so the Router can release load. */
export interface RequestStatus {
  request_id: string;
  worker_id: string;
  status: 'first_token' | 'finished';
}

/** JSON schema of {@link WorkerRequest}. */
export const WORKER_REQUEST_SCHEMA = {
  type: 'object',
  required: ['request_id', 'token_ids'],
  properties: {
    request_id: { type: 'string', minLength: 1 },
    token_ids: { type: 'array', items: { type: 'integer', minimum: 0, maximum: 4294967295 } },
    generated_token_ids: { type: 'array', items: { type: 'integer', minimum: 0, maximum: 4294967295 } },
    max_tokens: { type: 'integer', minimum: 1 },
  },
};

/** JSON schema of {@link RouteRequest}. */
export const ROUTE_REQUEST_SCHEMA = {
  ...WORKER_REQUEST_SCHEMA,
  properties: {
    ...WORKER_REQUEST_SCHEMA.properties,
    exclude_workers: { type: 'array', items: { type: 'string' } },
  },
};

/** JSON schema of {@link ProcessorRequest}. */
export const PROCESSOR_REQUEST_SCHEMA = {
  type: 'object',
  required: ['prompt', 'request_id'],
  properties: {
    prompt: { type: 'string' },
    request_id: { type: 'string', minLength: 1 },
    max_tokens: { type: 'integer', minimum: 1 },
    model: { type: 'string' },
    generated_token_ids: { type: 'array', items: { type: 'integer', minimum: 0, maximum: 4294967295 } },
  },
};
