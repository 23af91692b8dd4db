/**
 * The synthetic `shared-prefix` workload: multi-turn sessions whose prompts start with one of a
 * few shared system prompts, and grow by each turn's output and next user message.
 * @packageDocumentation
 */
import { seededRandom } from '@dynamo-ts/mocker';
import { fillHashIdTokens, type BenchRequest } from './trace';

/** Options of {@link sharedPrefixWorkload}. */
export interface SharedPrefixOptions {
  /** Sessions; default 64. */
  sessions?: number;
  /** Turns per session; default 4. */
  turns?: number;
  /** Shared system prompts; default 8. */
  prefixGroups?: number;
  /** Tokens of a system prompt; default 4096. */
  prefixLength?: number;
  /** Tokens of each user message; default 512. */
  userTokens?: number;
  /** Tokens generated per turn; default 128. */
  outputTokens?: number;
  /** Sessions starting per second (Poisson); default 4. */
  sessionRate?: number;
  /** Mean time between a session's turns, ms (exponential); default 3000. */
  thinkTimeMs?: number;
}

/** Defaults of {@link SharedPrefixOptions}. */
export const SHARED_PREFIX_DEFAULTS: Required<SharedPrefixOptions> = {
  sessions: 64,
  turns: 4,
  prefixGroups: 8,
  prefixLength: 4096,
  userTokens: 512,
  outputTokens: 128,
  sessionRate: 4,
  thinkTimeMs: 3000,
};

/** Builds the workload's requests (sorted by arrival), deterministic for `seed`. */
export function sharedPrefixWorkload(options: SharedPrefixOptions, seed: number): BenchRequest[] {
  const o = { ...SHARED_PREFIX_DEFAULTS };
  for (const [k, v] of Object.entries(options)) if (v !== undefined) (o as Record<string, number>)[k] = v;
  const rnd = seededRandom(seed);
  const exp = (mean: number): number => -Math.log(1 - rnd()) * mean;
  const out: BenchRequest[] = [];
  let start = 0;
  let nextId = 1_000_000;
  for (let s = 0; s < o.sessions; s++) {
    start += exp(1000 / o.sessionRate);
    const group = Math.floor(rnd() * o.prefixGroups);
    // Segments: [kind id, length]; the system prompt is shared by its group.
    const segments: Array<[number, number]> = [[group, o.prefixLength]];
    let t = start;
    for (let turn = 0; turn < o.turns; turn++) {
      segments.push([nextId++, o.userTokens]);
      const segs = segments.slice();
      const length = segs.reduce((a, [, n]) => a + n, 0);
      out.push({
        arrivalMs: t,
        inputLength: length,
        outputLength: o.outputTokens,
        tokens: () => {
          const buf = new Uint32Array(length);
          let at = 0;
          for (const [id, n] of segs) {
            fillHashIdTokens(id, buf, at, n);
            at += n;
          }
          return buf;
        },
      });
      segments.push([nextId++, o.outputTokens]);
      t += exp(o.thinkTimeMs);
    }
  }
  out.sort((a, b) => a.arrivalMs - b.arrivalMs);
  return out;
}

/** Options of {@link mixedLengthWorkload}. */
export interface MixedLengthOptions {
  /** Requests; default 1000. */
  requests?: number;
  /** Arrivals per second (Poisson); default 20. */
  rate?: number;
  /** Share of long prompts; default 0.2. */
  longFraction?: number;
  /** Long prompt tokens, uniform in [min, max]; default 8192..32768. */
  longTokens?: [number, number];
  /** Short prompt tokens, uniform in [min, max]; default 128..1024. */
  shortTokens?: [number, number];
  /** Shared document prefixes a long prompt starts with (half its length); default 16. */
  documents?: number;
  /** Tokens generated per request; default 64. */
  outputTokens?: number;
}

/**
 * Long and short prompts mixed: short chat-like prompts (unique) and long ones that start with one
 * of a few shared documents (RAG-like), Poisson arrivals. Deterministic for `seed`.
 */
export function mixedLengthWorkload(options: MixedLengthOptions, seed: number): BenchRequest[] {
  const o = {
    requests: 1000,
    rate: 20,
    longFraction: 0.2,
    longTokens: [8192, 32768] as [number, number],
    shortTokens: [128, 1024] as [number, number],
    documents: 16,
    outputTokens: 64,
    ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)),
  };
  const rnd = seededRandom(seed);
  const uniform = ([a, b]: [number, number]): number => a + Math.floor(rnd() * (b - a + 1));
  const out: BenchRequest[] = [];
  let t = 0;
  let nextId = 2_000_000;
  for (let i = 0; i < o.requests; i++) {
    t += -Math.log(1 - rnd()) * (1000 / o.rate);
    const long = rnd() < o.longFraction;
    const length = uniform(long ? o.longTokens : o.shortTokens);
    const segs: Array<[number, number]> = long
      ? [
          [3_000_000 + Math.floor(rnd() * o.documents), Math.floor(length / 2)],
          [nextId++, length - Math.floor(length / 2)],
        ]
      : [[nextId++, length]];
    out.push({
      arrivalMs: t,
      inputLength: length,
      outputLength: o.outputTokens,
      tokens: () => {
        const buf = new Uint32Array(length);
        let at = 0;
        for (const [id, n] of segs) {
          fillHashIdTokens(id, buf, at, n);
          at += n;
        }
        return buf;
      },
    });
  }
  return out;
}
