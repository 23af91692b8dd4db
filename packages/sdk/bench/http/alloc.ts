/**
 * Bytes the embedded hello-world graph allocates per request (without HTTP), by function: the
 * sampling heap profiler, counting the objects GC already collected, over N requests through
 * the Processor (16 callers, the event loop turning between a caller's requests) after N of
 * warm-up. Allocation is steadier than CPU time on a shared VM.
 *
 *   npm run build && N=20000 TOP=25 npx tsx packages/sdk/bench/http/alloc.ts 2>/dev/null
 */
import { Session } from 'node:inspector';
import { loadProcessor, serveHelloWorld } from './processor-load';

interface ProfileNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: ProfileNode[];
}

function post<R>(s: Session, method: string, params?: object): Promise<R> {
  return new Promise((resolve, reject) => s.post(method, params as never, (e, r) => (e ? reject(e) : resolve(r as R))));
}

async function main(): Promise<void> {
  const { graph, processor } = await serveHelloWorld('alloc', 'info');
  const N = Number(process.env.N ?? 20000);
  await loadProcessor(processor, N, 'warm');
  const s = new Session();
  s.connect();
  await post(s, 'HeapProfiler.enable');
  await post(s, 'HeapProfiler.startSampling', {
    samplingInterval: 128,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
  await loadProcessor(processor, N, 'measured');
  const { profile } = await post<{ profile: { head: ProfileNode } }>(s, 'HeapProfiler.stopSampling');
  const self = new Map<string, number>();
  let total = 0;
  const walk = (n: ProfileNode): void => {
    const cf = n.callFrame;
    const key = `${cf.functionName || '(anonymous)'}  ${cf.url.replace(/.*\/(packages|examples|node_modules)\//, '')}:${cf.lineNumber}`;
    self.set(key, (self.get(key) ?? 0) + n.selfSize);
    total += n.selfSize;
    for (const c of n.children) walk(c);
  };
  walk(profile.head);
  process.stdout.write(`allocated ${(total / N).toFixed(0)} bytes/request (${N} requests)\n`);
  const top = [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(process.env.TOP ?? 25));
  for (const [k, v] of top) process.stdout.write(`${(v / N).toFixed(0).padStart(7)}  ${k}\n`);
  await graph.close({ timeoutMs: 1000 });
}

main().catch((e: Error) => {
  process.stderr.write(`alloc: ${e.stack ?? e.message}\n`);
  process.exit(1);
});
