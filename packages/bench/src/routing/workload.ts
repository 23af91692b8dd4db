/**
 * The synthetic `shared-prefix` workload: multi-turn sessions whose prompts start with one of a
 * few shared system prompts, and grow by each turn's output and next user message.
 * @packageDocumentation
 */
import { seededRandom } from '@dynamo-ts/router/sim';
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
