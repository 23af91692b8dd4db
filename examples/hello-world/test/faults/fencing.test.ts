import { describeWithBinaries } from '../../../../test/support/integration';
import { generateJson } from '../helpers';
import { CONFIGS, MARKER, waitForWorkers, waitUntil, withCluster, type ServiceProcess } from './harness';
import { settleCase } from './report';

jest.setTimeout(180_000);

/** ~300 tokens shared by every prompt of the case: the worker that prefilled them answers fast. */
const PREFIX =
  'Shared context for the fencing case. ' +
  Array.from({ length: 150 }, (_, i) => `item${i} costs ${i * 7} units`).join(', ') +
  '. Question';

/** Uncached prompt tokens cost this much on a DummyWorker: a cache miss on the prefix is ~150 ms. */
const PREFILL_MS_PER_TOKEN = 0.5;

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** One `/generate`: its wall time, the worker its answer names, whether the answer is exact. */
interface Timed {
  ms: number;
  worker: string;
  ok: boolean;
}

/** One `/generate` with its wall time and the worker its answer names. */
async function timed(url: string, prompt: string): Promise<Timed> {
  const t0 = performance.now();
  const r = await generateJson(url, prompt);
  const ms = performance.now() - t0;
  const out = r.body.worker_output ?? '';
  const at = out.lastIndexOf(MARKER);
  const worker = at < 0 ? '' : out.slice(at + MARKER.length);
  return { ms, worker, ok: r.status === 200 && out === `${prompt}${MARKER}${worker}` };
}

/** Sum of `dynamo_router_decisions_total` for `worker` over the frontends' `/metrics` (their Routers). */
async function decisionsFor(urls: readonly string[], worker: string): Promise<number> {
  let n = 0;
  const line = new RegExp(`^dynamo_router_decisions_total\\{[^}]*worker="${worker}"[^}]*\\} (\\d+)`, 'gm');
  for (const url of urls) {
    const text = await (await fetch(`${url}/metrics`)).text();
    for (const m of text.matchAll(line)) n += Number(m[1]);
  }
  return n;
}

/** Failovers the Processors logged for `workerId` (a request sent to it that found no one). */
const failoversTo = (frontends: readonly ServiceProcess[], workerId?: string): number =>
  frontends
    .flatMap((f) => f.logs('worker unavailable; routing again'))
    .filter((l) => workerId === undefined || l.worker_id === workerId).length;

describeWithBinaries(['nats-server', 'etcd'], 'fault injection: a kill -9 worker is fenced at once', () => {
  it('after kill -9 of the worker holding a prefix, that prefix keeps its latency and the dead worker is not chosen again', async () => {
    // A lease long enough that the dead worker stays registered for the whole case: only fencing
    // keeps it from being chosen (etcd would drop it after the TTL).
    await withCluster(
      'kill -9 fencing',
      async (c) => {
        const workerArgs = ['-f', CONFIGS.agg, `--DummyWorker.local_prefill_ms_per_token=${PREFILL_MS_PER_TOKEN}`];
        // Two graphs (Frontend, Processor, Router each): two Routers that must agree on the fence.
        const [a, b, nodeA, nodeB] = await Promise.all([
          c.serveFrontend(['-f', CONFIGS.agg], 'graph-a'),
          c.serveFrontend(['-f', CONFIGS.agg], 'graph-b'),
          c.serveWorker('node-a', workerArgs),
          c.serveWorker('node-b', workerArgs),
        ]);
        const urls = [a.url, b.url];
        await Promise.all(urls.map((u) => waitForWorkers(u, 2)));
        const frontends = [a.proc, b.proc];

        // The first request with the prefix prefills it on one worker: the holder.
        const first = await timed(a.url, `${PREFIX} 0?`);
        expect(first.ok).toBe(true);
        const holder = first.worker;
        const survivor = holder === 'node-a' ? 'node-b' : 'node-a';
        const victim = holder === 'node-a' ? nodeA : nodeB;
        const victimId = victim.logs('service ready').find((l) => l.service === 'DummyWorker')?.instance_id;

        // Before: requests sharing the prefix, alternating between the two graphs, go to the holder
        // (a few unmeasured first, so every process has compiled its paths).
        const N = 15;
        const warmUp: Timed[] = [];
        for (let i = 1; i <= 6; i++) warmUp.push(await timed(urls[i % 2]!, `${PREFIX} warm-up ${i}?`));
        const before: Timed[] = [];
        for (let i = 1; i <= N; i++) before.push(await timed(urls[i % 2]!, `${PREFIX} ${i}?`));
        const decisionsBefore = await decisionsFor(urls, holder);

        victim.kill('SIGKILL');
        const exit = await victim.exited;

        // After: the same kind of requests; the first pays the failover (and the survivor's prefill).
        const after: Timed[] = [];
        for (let i = 1; i <= N; i++) after.push(await timed(urls[i % 2]!, `${PREFIX} after ${i}?`));
        const decisionsAfter = await decisionsFor(urls, holder);
        await Promise.all(frontends.map((f) => f.settled()));
        const failovers = failoversTo(frontends);
        const failoversToVictim = victimId === undefined ? -1 : failoversTo(frontends, String(victimId));
        const fencedLogs = frontends.flatMap((f) => f.logs('worker fenced: a request to it failed'));

        // Restarted under the same name (a new instance): it is chosen again. Concurrent requests
        // with new prompts spread over both workers by load. (The dead instance, still registered,
        // may be tried once more when its fence's 10 s probation ends: not counted here.)
        const restarted = await c.serveWorker(holder, workerArgs);
        await waitUntil(
          () => frontends.every((f) => f.logs('worker joined').filter((l) => l.name === holder).length >= 2),
          `both Processors to see the restarted ${holder}`,
        );
        const answeredBy = new Map<string, number>();
        let round = 0;
        let badAnswers = 0;
        for (; round < 10 && !answeredBy.has(holder); round++) {
          const batch = await Promise.all(
            Array.from({ length: 6 }, (_, i) =>
              timed(urls[i % 2]!, `fresh prompt ${round}-${i}: ${'the quick brown fox '.repeat(10)}`),
            ),
          );
          for (const r of batch) {
            if (!r.ok) badAnswers++;
            answeredBy.set(r.worker, (answeredBy.get(r.worker) ?? 0) + 1);
          }
        }
        await restarted.stop();

        const measured = [first, ...warmUp, ...before, ...after];
        const medBefore = median(before.map((r) => r.ms));
        const medAfter = median(after.map((r) => r.ms));
        settleCase(
          {
            case: '7 kill -9 the worker holding a prefix (2 graphs, 2 workers)',
            sent: measured.length,
            ok: measured.filter((r) => r.ok).length,
            lost: measured.filter((r) => !r.ok).length,
            unavailable: 0,
            corrupted: 0,
            duplicated: 0,
            recovery_ms: null,
            notes:
              `prefix median ${medBefore.toFixed(1)} ms before, ${medAfter.toFixed(1)} ms after ` +
              `(x${(medAfter / medBefore).toFixed(2)}; first after ${after[0]!.ms.toFixed(0)} ms); ` +
              `${failovers} failover(s), ${decisionsAfter - decisionsBefore} decision(s) for the dead worker; ` +
              `restarted ${holder} chosen again in round ${round}`,
          },
          () => {
            expect(exit.signal).toBe('SIGKILL');
            // Before the kill the prefix went to its holder every time.
            expect([...warmUp, ...before].filter((r) => !r.ok || r.worker !== holder)).toEqual([]);
            // After: every answer correct, all from the survivor.
            expect(after.filter((r) => !r.ok || r.worker !== survivor)).toEqual([]);
            // The dead worker was chosen once (the first request after the kill), by one Router;
            // that failure fenced it for every Router and Processor at once.
            expect(decisionsAfter - decisionsBefore).toBe(1);
            expect(failovers).toBe(1);
            expect(failoversToVictim).toBe(1);
            expect(fencedLogs.length).toBeGreaterThanOrEqual(1);
            // The prefix kept its latency: the median after the kill within 2x the median before.
            expect(medAfter).toBeLessThanOrEqual(2 * medBefore);
            // The restarted worker is chosen again.
            expect(badAnswers).toBe(0);
            expect(answeredBy.get(holder) ?? 0).toBeGreaterThan(0);
          },
        );
      },
      { leaseTtlS: 60 },
    );
  });
});
