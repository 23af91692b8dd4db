import { KvRouter, type StrategyName } from '@dynamo-ts/router';
import { createLogger, type Logger } from '@dynamo-ts/runtime';
import type { EndpointContext } from '@dynamo-ts/sdk';
import type { EngineHost } from '@dynamo-ts/llm';
import { prng } from '../tiny-model';
import { startLlamaEngine, type LlamaEngine } from '../worker';

/** Options of {@link runEnginesBench}. */
export interface EnginesBenchOptions {
  model: string;
  workers: number;
  strategies: StrategyName[];
  /** Sessions of the multi-turn workload (each a prefix group's system prompt + its turns). */
  sessions: number;
  turns: number;
  /** Distinct shared system prompts. */
  prefixGroups: number;
  /** Words of each shared system prompt. */
  prefixWords: number;
  outputTokens: number;
  /** Sessions run at once. */
  concurrency: number;
  slots: number;
  blockSize: number;
  seed: number;
  logger?: Logger;
  onProgress?(strategy: string, done: number, total: number): void;
}

/** One strategy's numbers. */
export interface EnginesBenchResult {
  strategy: string;
  requests: number;
  ttft_ms: { p50: number; p99: number };
  itl_ms: { p50: number; p99: number };
  tokens_per_s: number;
  cached_prompt_fraction: number;
  prompt_tokens: number;
  wall_s: number;
}

const WORDS = 'the model cache router worker prefix hello world stream request answer question token graph serve'.split(
  ' ',
);

/** The `p`th percentile of `xs` (nearest rank). */
export function percentile(xs: number[], p: number): number {
  if (!xs.length) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

/** `x` rounded to `d` decimals. */
export const round = (x: number, d = 2): number => Math.round(x * 10 ** d) / 10 ** d;

/** The texts of each session's turns: a group's shared system prompt, then the growing conversation. */
function workload(o: EnginesBenchOptions): string[][] {
  const rand = prng(o.seed);
  const words = (n: number): string =>
    Array.from({ length: n }, () => WORDS[Math.floor(rand() * WORDS.length)]).join(' ');
  const prefixes = Array.from({ length: o.prefixGroups }, (_, g) => `system ${g}: ${words(o.prefixWords)}`);
  return Array.from({ length: o.sessions }, (_, s) => {
    let text = prefixes[s % o.prefixGroups]!;
    return Array.from({ length: o.turns }, () => (text += ` user: ${words(12)}`));
  });
}

/** An endpoint context nobody cancels (engines driven without the request plane). */
export function fakeContext(): EndpointContext {
  const ac = new AbortController();
  return {
    signal: ac.signal,
    get cancelled() {
      return ac.signal.aborted;
    },
  } as unknown as EndpointContext;
}

/**
 * Real llama.cpp engines (one child each) behind the router package's KV router, fed their own
 * KV events and load: a shared-prefix multi-turn workload once per strategy, on fresh engines.
 */
export async function runEnginesBench(o: EnginesBenchOptions): Promise<EnginesBenchResult[]> {
  const logger = o.logger ?? createLogger({ level: 'error' });
  const sessions = workload(o);
  const results: EnginesBenchResult[] = [];
  for (const strategy of o.strategies) {
    const router = new KvRouter({ blockSize: o.blockSize, strategy });
    const engines: LlamaEngine[] = [];
    try {
      for (let w = 0; w < o.workers; w++) {
        const id = `bench-${w}`;
        router.addWorker(id);
        const built: { e?: LlamaEngine } = {};
        const host: EngineHost = {
          workerId: id,
          workerName: id,
          blockSize: o.blockSize,
          totalBlocks: 1 << 20,
          logger,
          publishKvEvent: (e) => router.applyEvent(e),
          publishLoad: (m) => router.applyLoad(m),
          loadChanged: () => {
            const l = built.e?.load?.();
            if (l)
              router.applyLoad({
                worker_id: id,
                active_blocks: l.activeBlocks,
                total_blocks: l.totalBlocks,
                waiting: l.waiting,
              });
          },
        };
        built.e = await startLlamaEngine(
          host,
          { model: o.model, model_name: '', slots: o.slots, context_size: 4096, threads: 1, restart_delay_ms: 100 },
          'model',
        );
        engines.push(built.e);
      }
      const byId = new Map(engines.map((e, i) => [`bench-${i}`, e]));
      const prompts = await Promise.all(
        sessions.map((turns) => Promise.all(turns.map((t) => engines[0]!.process.tokenize(t)))),
      );
      const total = o.sessions * o.turns;
      const ttft: number[] = [];
      const itl: number[] = [];
      let done = 0;
      let generated = 0;
      const t0 = performance.now();
      let next = 0;
      const runSession = async (s: number): Promise<void> => {
        for (const tokens of prompts[s]!) {
          const d = router.route({ tokenIds: tokens });
          const eng = byId.get(d.worker_id)!;
          const start = performance.now();
          let last = start;
          let first = true;
          for await (const step of eng.generate(
            {
              requestId: d.request_id,
              promptTokenIds: tokens,
              generatedTokenIds: [],
              contextTokenIds: tokens,
              maxNewTokens: o.outputTokens,
              temperature: 0,
              prefilledRemotely: false,
            },
            fakeContext(),
          )) {
            if (!step.tokenIds.length) continue;
            const now = performance.now();
            if (first) {
              ttft.push(now - start);
              router.onFirstToken(d.request_id);
              first = false;
            } else itl.push((now - last) / step.tokenIds.length);
            last = now;
            generated += step.tokenIds.length;
          }
          router.onFinished(d.request_id);
          o.onProgress?.(strategy, ++done, total);
        }
      };
      await Promise.all(
        Array.from({ length: Math.min(o.concurrency, o.sessions) }, async () => {
          while (next < o.sessions) await runSession(next++);
        }),
      );
      const wall = (performance.now() - t0) / 1000;
      const cached = engines.reduce((a, e) => a + e.stats.cachedPromptTokens, 0);
      const evaluated = engines.reduce((a, e) => a + e.stats.evaluatedPromptTokens, 0);
      results.push({
        strategy,
        requests: total,
        ttft_ms: { p50: round(percentile(ttft, 50)), p99: round(percentile(ttft, 99)) },
        itl_ms: { p50: round(percentile(itl, 50), 3), p99: round(percentile(itl, 99), 3) },
        tokens_per_s: round(generated / wall, 1),
        cached_prompt_fraction: round(cached / Math.max(1, cached + evaluated), 4),
        prompt_tokens: cached + evaluated,
        wall_s: round(wall, 2),
      });
    } finally {
      await Promise.all(engines.map((e) => e.close?.()));
    }
  }
  return results;
}

/** The results as a text table. */
export function formatEnginesTable(rs: EnginesBenchResult[]): string {
  const head = [
    'strategy',
    'requests',
    'ttft p50 ms',
    'ttft p99 ms',
    'itl p50 ms',
    'itl p99 ms',
    'tokens/s',
    'cached prompt',
  ];
  const rows = rs.map((r) => [
    r.strategy,
    String(r.requests),
    r.ttft_ms.p50.toFixed(2),
    r.ttft_ms.p99.toFixed(2),
    r.itl_ms.p50.toFixed(3),
    r.itl_ms.p99.toFixed(3),
    r.tokens_per_s.toFixed(1),
    r.cached_prompt_fraction.toFixed(3),
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padStart(w[i]!)).join('  ');
  return [line(head), ...rows.map(line)].join('\n');
}
