/** What the hello-world services send each other (JSON on the request plane). */

/** Processor `generate` request (the frontend's `/generate` body). */
export interface ProcessorRequest {
  prompt: string;
  request_id: string;
}

/** Processor `generate` item: a piece of the output text. */
export interface ProcessorEvent {
  worker_output: string;
  request_id: string;
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
  token_ids: number[];
}

/** DummyWorker `generate` item: the next generated token(s). */
export interface WorkerEvent {
  token_ids: number[];
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
  properties: { prompt: { type: 'string' }, request_id: { type: 'string', minLength: 1 } },
};
