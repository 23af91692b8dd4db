/**
 * The worst event-loop stall one adversarial request causes: serves the embedded hello-world graph
 * (Frontend, Processor, Router, workers: one process) and, while a small request is timed again
 * and again, sends one adversarial request of each kind. Prints, per kind, the longest event-loop
 * delay (perf_hooks monitorEventLoopDelay) and the slowest concurrent small request, and their
 * ratio to a baseline measured in the same run with small requests only. Each row (and the
 * baseline) is measured STALL_RUNS times (default 3), interleaved, and the median is printed, so
 * a burst of load from elsewhere on the machine moves one sample, not the table. Then times BPE on
 * one long word, cut (tokenize) and uncut (gpt-tokenizer's encode), to show linear vs quadratic.
 *
 *   npm run build && node --import tsx packages/bench/scripts/stall.ts
 *   STALL_RUNS=1 node --import tsx packages/bench/scripts/stall.ts   # one sample a row
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { encode } from 'gpt-tokenizer/encoding/cl100k_base';
import path from 'node:path';
import { createLogger } from '@dynamo-ts/runtime';
import { embeddedPlatform, loadService, serveGraph } from '@dynamo-ts/sdk';

// The example is loaded by path, as `dynamo-ts serve` loads it (no package imports an example).
const COMPONENTS = path.resolve(__dirname, '../../../examples/hello-world/components');
const Frontend = loadService(`${path.join(COMPONENTS, 'graph.ts')}:Frontend`);
const { tokenize } = require(path.join(COMPONENTS, 'tokenizer.ts')) as { tokenize(text: string): number[] };

interface Kind {
  name: string;
  route: string;
  body: string;
}

const chat = (content: string, extra: Record<string, unknown> = {}): string =>
  JSON.stringify({ model: 'hello-world', messages: [{ role: 'user', content }], max_tokens: 16, ...extra });

const KINDS: Kind[] = [
  { name: '400 KB one-word prompt', route: '/generate', body: JSON.stringify({ prompt: 'a'.repeat(400_000) }) },
  {
    name: '400 KB one-word prompt, max_tokens 1',
    route: '/v1/completions',
    body: JSON.stringify({ model: 'hello-world', prompt: 'a'.repeat(400_000), max_tokens: 1 }),
  },
  { name: '"é" x 300000', route: '/generate', body: JSON.stringify({ prompt: 'é'.repeat(300_000) }) },
  {
    name: '<|endoftext|> x 20000',
    route: '/generate',
    body: JSON.stringify({ prompt: '<|endoftext|>'.repeat(20_000) }),
  },
  {
    name: '16 stops of 1024 chars, 2 KB answer',
    route: '/v1/chat/completions',
    body: chat('a'.repeat(2_000), {
      max_tokens: 4000,
      stop: Array.from({ length: 16 }, (_, i) => 'a'.repeat(1023 - i) + 'b'),
    }),
  },
  {
    name: '3.5 MB of short words',
    route: '/generate',
    body: JSON.stringify({ prompt: 'lorem ipsum dolor sit amet '.repeat(130_000) }),
  },
  {
    name: 'JSON nested 100000 deep',
    route: '/generate',
    body: '{"prompt":' + '['.repeat(100_000) + ']'.repeat(100_000) + '}',
  },
];

async function post(url: string, route: string, body: string): Promise<{ status: number; ms: number }> {
  const t0 = performance.now();
  const res = await fetch(`${url}${route}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  await res.arrayBuffer();
  return { status: res.status, ms: performance.now() - t0 };
}

/** Times small requests back to back until `done` resolves; returns the slowest (ms). */
async function smallLoop(url: string, done: Promise<unknown>): Promise<{ worst: number; n: number }> {
  let finished = false;
  void done.finally(() => (finished = true));
  let worst = 0;
  let n = 0;
  while (!finished || n < 5) {
    const r = await post(url, '/generate', JSON.stringify({ prompt: 'small' }));
    worst = Math.max(worst, r.ms);
    n++;
  }
  return { worst, n };
}

async function measure(
  url: string,
  adversarial: Kind | undefined,
): Promise<{ stallMs: number; smallWorstMs: number; status: number; ms: number }> {
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  const big = adversarial
    ? post(url, adversarial.route, adversarial.body)
    : new Promise<{ status: number; ms: number }>((r) => setTimeout(() => r({ status: 0, ms: 0 }), 1000));
  const [small, r] = await Promise.all([smallLoop(url, big), big]);
  h.disable();
  return { stallMs: h.max / 1e6, smallWorstMs: small.worst, status: r.status, ms: r.ms };
}

async function main(): Promise<void> {
  const graph = await serveGraph(Frontend, {
    platform: embeddedPlatform(),
    settings: { namespace: 'bench-stall', port: 0, workerName: 'stall', leaseTtlMs: 10_000 },
    config: { Frontend: { port: 0, host: '127.0.0.1' } },
    logger: createLogger({ silent: true }),
  });
  const url = graph.get('Frontend')[0]!.instance.metadata!.url as string;
  for (let i = 0; i < 200; i++) await post(url, '/generate', JSON.stringify({ prompt: 'warm up' }));
  const runs = Number(process.env.STALL_RUNS ?? 3);
  if (!Number.isInteger(runs) || runs < 1 || runs > 50) {
    process.stderr.write(`stall: STALL_RUNS must be an integer in [1, 50], got ${process.env.STALL_RUNS}\n`);
    process.exit(2);
  }
  type Sample = Awaited<ReturnType<typeof measure>>;
  const samples: Sample[][] = Array.from({ length: KINDS.length + 1 }, () => []);
  // Interleaved: run r measures the baseline and every kind once.
  for (let r = 0; r < runs; r++) {
    samples[0]!.push(await measure(url, undefined));
    for (let k = 0; k < KINDS.length; k++) samples[k + 1]!.push(await measure(url, KINDS[k]));
  }
  const med = (xs: number[]): number => {
    const v = [...xs].sort((a, b) => a - b);
    const m = v.length >> 1;
    return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
  };
  const summary = samples.map((ss) => ({
    stallMs: med(ss.map((x) => x.stallMs)),
    smallWorstMs: med(ss.map((x) => x.smallWorstMs)),
    ms: med(ss.map((x) => x.ms)),
    status: ss[0]!.status,
  }));
  const base = summary[0]!;
  const rows: string[][] = [
    ['request', 'status', 'its time ms', 'max loop stall ms', 'x base', 'worst small req ms', 'x base'],
    ['(baseline: small requests only)', '-', '-', base.stallMs.toFixed(1), '1.0', base.smallWorstMs.toFixed(1), '1.0'],
  ];
  KINDS.forEach((k, i) => {
    const m = summary[i + 1]!;
    rows.push([
      k.name,
      String(m.status),
      m.ms.toFixed(0),
      m.stallMs.toFixed(1),
      (m.stallMs / base.stallMs).toFixed(1),
      m.smallWorstMs.toFixed(1),
      (m.smallWorstMs / base.smallWorstMs).toFixed(1),
    ]);
  });
  await graph.close({ timeoutMs: 1000 });
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  process.stdout.write(`medians of ${runs} run(s) per row\n`);
  for (const r of rows)
    process.stdout.write(
      r
        .map((x, c) => x.padEnd(widths[c]!))
        .join('  ')
        .trimEnd() + '\n',
    );

  process.stdout.write('\nBPE on one word of n letters: tokenize (cut) vs uncut encode\n');
  for (const n of [4_000, 8_000, 16_000, 32_000]) {
    const w = 'a'.repeat(n);
    let t = performance.now();
    tokenize(w);
    const cut = performance.now() - t;
    t = performance.now();
    encode(w);
    const uncut = performance.now() - t;
    process.stdout.write(
      `n=${n}: tokenize ${cut.toFixed(1)} ms, encode ${uncut.toFixed(1)} ms (x${(uncut / cut).toFixed(0)})\n`,
    );
  }
}

main().catch((e: Error) => {
  process.stderr.write(`stall: ${e.stack ?? e.message}\n`);
  process.exit(1);
});
