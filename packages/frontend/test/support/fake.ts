import { setTimeout as sleep } from 'node:timers/promises';
import { InternalError, UnavailableError } from '@dynamo-ts/runtime';
import type { GenerateEvent, GenerateFn, GenerateRequest } from '@dynamo-ts/frontend';

/** What the fake upstream saw. */
export interface FakeRecord {
  requests: GenerateRequest[];
  /** request id -> the abort reason's message, for every request whose signal fired. */
  aborted: Map<string, string>;
}

/** The tokens of the fake model: the prompt split before each space. */
export const words = (s: string): string[] => s.split(/(?= )/);

/**
 * A fake upstream that keeps the frontend/Processor contract: it echoes the prompt one word
 * (= one token) per event, then `_GeneratedBy_fake` as one token, with `prompt_tokens`, cumulative
 * `completion_tokens`, cut at `max_tokens` (`finish_reason: 'length'`), and a last event with empty
 * text carrying the finish reason. Prompts starting with `slow` wait 5 ms per token and run for
 * 2000 tokens; `hang` never answers; `unavailable` fails before any event; `fail-mid` fails after one.
 */
export function fakeGenerate(record: FakeRecord): GenerateFn {
  return async function* (req: GenerateRequest, { signal }: { signal: AbortSignal }): AsyncGenerator<GenerateEvent> {
    record.requests.push(req);
    signal.addEventListener(
      'abort',
      () => record.aborted.set(req.request_id, (signal.reason as Error | undefined)?.message ?? 'aborted'),
      { once: true },
    );
    if (req.prompt === 'unavailable') throw new UnavailableError('no worker');
    if (req.prompt === 'hang') {
      await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
      return;
    }
    const slow = req.prompt.startsWith('slow');
    const prompt = words(req.prompt);
    const tokens = slow ? Array.from({ length: 2000 }, (_, i) => ` t${i}`) : [...prompt, '_GeneratedBy_fake'];
    const limit = req.max_tokens ?? Number.POSITIVE_INFINITY;
    const base = { request_id: req.request_id, prompt_tokens: prompt.length };
    let n = 0;
    for (const t of tokens) {
      if (n >= limit) {
        yield { ...base, worker_output: '', completion_tokens: n, finish_reason: 'length' };
        return;
      }
      if (slow) await sleep(5);
      if (signal.aborted) return;
      n++;
      yield { ...base, worker_output: t, completion_tokens: n };
      if (req.prompt === 'fail-mid') throw new InternalError('engine crashed');
    }
    yield { ...base, worker_output: '', completion_tokens: n, finish_reason: 'stop' };
  };
}

/** The `data:` payloads of an SSE body, in order. */
export function sseData(text: string): string[] {
  return text
    .split('\n\n')
    .filter((e) => e.trim())
    .map((e) =>
      e
        .split('\n')
        .filter((l) => l.startsWith('data: '))
        .map((l) => l.slice('data: '.length))
        .join('\n'),
    );
}

/**
 * The value of a sample in Prometheus text exposition: the sum over the samples named `name`
 * whose labels include `labels`; undefined when none matches.
 */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  let sum: number | undefined;
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = new Map<string, string>();
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) have.set(l[1]!, l[2]!);
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) sum = (sum ?? 0) + Number(m[3]);
  }
  return sum;
}
