/** The workloads of the rpc bench. */

/** A request of about 117 bytes of JSON, as a small routing or tokenizer call. */
const SMALL = {
  model: 'bench-model-7b',
  request_id: 'req-00000000001',
  token_ids: [101, 2023, 2003, 1037, 3231, 102],
  max_tokens: 1024,
};

/** A request of 64 KB of JSON. */
const LARGE = { model: 'bench-model', data: 'x'.repeat(64 * 1024 - 40) };

export interface UnaryScenario {
  kind: 'unary';
  payload: unknown;
  concurrency: number;
}

export interface StreamScenario {
  kind: 'stream';
  /** Items per stream. */
  items: number;
  concurrency: number;
}

export const SCENARIOS = {
  'unary-small-seq': { kind: 'unary', payload: SMALL, concurrency: 1 },
  'unary-small-64': { kind: 'unary', payload: SMALL, concurrency: 64 },
  'unary-64k-seq': { kind: 'unary', payload: LARGE, concurrency: 1 },
  'unary-64k-64': { kind: 'unary', payload: LARGE, concurrency: 64 },
  'stream-2000x4': { kind: 'stream', items: 2000, concurrency: 4 },
} satisfies Record<string, UnaryScenario | StreamScenario>;

export type ScenarioName = keyof typeof SCENARIOS;

/** Bytes of JSON of a scenario's request. */
export function requestBytes(name: ScenarioName): number {
  const s = SCENARIOS[name];
  return Buffer.byteLength(JSON.stringify(s.kind === 'unary' ? s.payload : { n: s.items }));
}
