/**
 * Where a routing decision's time goes, on the `bench router` workload: wraps the parts of
 * `KvRouter.route()` (internals, by name: a diagnostic, not an API) with timers and counts the
 * block-table lookups of the index walk. Prints the p50 and mean of each part in microseconds (the
 * wrappers add ~0.1 us each) and the walk's matched blocks and table lookups per decision.
 *
 *   npm run build && node --expose-gc --import tsx packages/bench/scripts/router-parts.ts [workers] [blocks]
 *
 * `workers` and `blocks` default to the bench's 64 and 1,000,000.
 */
import { KvRouter } from '@dynamo-ts/router';
import { runRouterBench } from '../src/router-bench';

type Fn = (...args: unknown[]) => unknown;
const nowUs = (): number => Number(process.hrtime.bigint()) / 1000;
const parts = new Map<string, number[]>();
let walked = 0;
let lookups = 0;

function wrap(obj: Record<string, unknown>, name: string, label: string, after?: (r: unknown) => void): void {
  const f = (obj[name] as Fn).bind(obj);
  const times: number[] = [];
  parts.set(label, times);
  obj[name] = (...args: unknown[]): unknown => {
    const t = nowUs();
    const r = f(...args);
    times.push(nowUs() - t);
    after?.(r);
    return r;
  };
}

const route = KvRouter.prototype.route;
let wrapped = false;
KvRouter.prototype.route = function (this: KvRouter, input) {
  const self = this as unknown as Record<string, Record<string, unknown>>;
  if (!wrapped) {
    wrapped = true;
    wrap(self.hasher!, 'hash', 'hashing');
    wrap(self.core!, 'score', 'index walk (score)', (r) => (walked += r as number));
    wrap(self.load!, 'scoreActive', "running requests' prefixes");
    wrap(self.strategy!, 'select', 'cost loop (select)');
    wrap(self.load!, 'onRoutedPacked', 'recording the request');
    const table = self.core!.blocks as Record<string, unknown>;
    const find = (table.find as Fn).bind(table);
    table.find = (...args: unknown[]): unknown => {
      lookups++;
      return find(...args);
    };
    parts.set('route() in all', []);
  }
  const t = nowUs();
  const r = route.call(this, input);
  parts.get('route() in all')!.push(nowUs() - t);
  return r;
};

async function main(): Promise<void> {
  const [workers, blocks] = process.argv.slice(2).map(Number);
  const r = await runRouterBench({
    ...(workers !== undefined ? { workers } : {}),
    ...(blocks !== undefined ? { blocks } : {}),
  });
  const warm = 500;
  process.stdout.write(`bench: decision p50 ${r.decision_us.p50} us, hash p50 ${r.hash_us.p50} us\n`);
  for (const [label, values] of parts) {
    const s = values.slice(warm).sort((a, b) => a - b);
    const mean = s.reduce((a, b) => a + b, 0) / Math.max(1, s.length);
    process.stdout.write(
      `${label.padEnd(30)} p50 ${s[Math.floor(s.length / 2)]!.toFixed(2)}  mean ${mean.toFixed(2)}\n`,
    );
  }
  const decisions = parts.get('route() in all')!.length;
  process.stdout.write(
    `per decision: ${(walked / decisions).toFixed(1)} blocks matched, ${(lookups / decisions).toFixed(1)} table lookups in the walk\n`,
  );
}
void main();
