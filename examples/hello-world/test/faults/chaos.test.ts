/**
 * Chaos soak: steady streaming traffic while a seeded random schedule kill -9s and SIGTERMs
 * workers and a Processor (each restarted), and restarts nats-server and etcd. Every answer must
 * be exact or a clean error (never corrupted or duplicated), every process must be running at the
 * end, and serving must be whole again once the faults stop. Prints the counts.
 *
 * Short version in `npm run test:faults` (CHAOS_S, default 30 s of faults); the long one:
 * `npm run test:chaos` (CHAOS_S=600).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { mulberry32 } from '@dynamo-ts/mocker';
import { describeWithBinaries } from '../../../../test/support/integration';
import {
  CONFIGS,
  TARGETS,
  describeFailures,
  failureSummary,
  startLoad,
  tally,
  waitForWorkers,
  withCluster,
  type FaultCluster,
  type RequestOutcome,
  type ServiceProcess,
} from './harness';
import { settleCase } from './report';

const CHAOS_S = Number(process.env.CHAOS_S ?? 30);
const SEED = Number(process.env.CHAOS_SEED ?? 20261202);
jest.setTimeout((CHAOS_S + 150) * 1000);

const WORKERS = ['node-a', 'node-b'];
const FAULTS = [
  'kill -9 worker',
  'SIGTERM worker',
  'kill -9 processor',
  'restart nats-server',
  'restart etcd',
] as const;
type Fault = (typeof FAULTS)[number];

describeWithBinaries(['nats-server', 'etcd'], 'fault injection: chaos soak', () => {
  it(`random kills and broker restarts for ${CHAOS_S} s under traffic: no answer corrupted, all recover`, async () => {
    await withCluster('chaos soak', async (c: FaultCluster) => {
      const workerArgs = ['-f', CONFIGS.agg, '--DummyWorker.token_delay_ms=10'];
      const serveProcessor = (): Promise<ServiceProcess> =>
        c.serve({ target: TARGETS.frontend.replace(/:Frontend$/, ':Processor'), workerName: 'proc-2' }, [
          'Router',
          'Processor',
        ]);
      const [{ url }, ...rest] = await Promise.all([
        c.serveFrontend(['-f', CONFIGS.agg]),
        c.serveWorker('node-a', workerArgs),
        c.serveWorker('node-b', workerArgs),
        serveProcessor(),
      ]);
      const workers = new Map<string, ServiceProcess>([
        ['node-a', rest[0]!],
        ['node-b', rest[1]!],
      ]);
      let processor = rest[2]!;
      await waitForWorkers(url, 2);

      const load = startLoad({
        url,
        ratePerSec: 8,
        prompt: (i) => `Chaos request ${i}: tell me a story that survives every fault we inject`,
        idPrefix: 'chaos',
        workers: WORKERS,
        timeoutMs: 30_000,
      });
      // Seeded, so a failing schedule can be replayed with CHAOS_SEED.
      const rnd = mulberry32(SEED);
      const done: Record<Fault, number> = {
        'kill -9 worker': 0,
        'SIGTERM worker': 0,
        'kill -9 processor': 0,
        'restart nats-server': 0,
        'restart etcd': 0,
      };
      const end = Date.now() + CHAOS_S * 1000;
      await sleep(2000);
      while (Date.now() < end) {
        const fault = FAULTS[Math.floor(rnd() * FAULTS.length)]!;
        if (fault === 'kill -9 worker' || fault === 'SIGTERM worker') {
          const name = WORKERS[Math.floor(rnd() * WORKERS.length)]!;
          const w = workers.get(name)!;
          w.kill(fault === 'kill -9 worker' ? 'SIGKILL' : 'SIGTERM');
          await w.exited;
          workers.set(name, await c.serveWorker(name, workerArgs));
        } else if (fault === 'kill -9 processor') {
          processor.kill('SIGKILL');
          await processor.exited;
          processor = await serveProcessor();
        } else if (fault === 'restart nats-server') {
          await c.nats.stop();
          await sleep(1000);
          await c.nats.start();
        } else {
          await c.etcd.stop();
          await sleep(2000);
          await c.etcd.start();
        }
        done[fault]++;
        await sleep(1000 + rnd() * 3000);
      }
      const faultsEnd = Date.now();
      // The lease TTL and the reconnects: then everything must be whole again.
      await waitForWorkers(url, 2, 60_000);
      const settledFrom = Date.now();
      await sleep(8000);
      const outcomes = await load.stop();

      const t = tally(outcomes);
      const during = tally(outcomes.filter((r: RequestOutcome) => r.sentAt < faultsEnd));
      const settled = outcomes.filter((r: RequestOutcome) => r.sentAt >= settledFrom);
      const faults = Object.entries(done)
        .map(([k, v]) => `${k} x${v}`)
        .join(', ');
      process.stderr.write(
        `chaos soak (seed ${SEED}, ${CHAOS_S} s): ${faults}; sent ${t.sent}, ok ${t.ok}, clean errors ` +
          `${t.unavailable + t.lost} (503 ${t.unavailable}, other ${t.lost}), corrupted ${t.corrupted}, ` +
          `duplicated ${t.duplicated}; failures: ${failureSummary(outcomes)}\n`,
      );
      settleCase(
        {
          case: `7 chaos soak ${CHAOS_S} s (seed ${SEED})`,
          ...t,
          recovery_ms: null,
          notes: `${faults}; during faults ${during.ok}/${during.sent} ok; after: ${settled.filter((r) => r.kind === 'ok').length}/${settled.length} ok; failures: ${failureSummary(outcomes)}`,
        },
        () => {
          // Every process is up at the end (the killed ones were restarted; none died on its own).
          expect([...workers.values(), processor].filter((p) => !p.running).map((p) => p.label)).toEqual([]);
          expect(t.corrupted).toBe(0);
          expect(t.duplicated).toBe(0);
          expect(Object.values(done).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
          expect(settled.length).toBeGreaterThan(20);
          expect(describeFailures(settled)).toBe('');
        },
      );
    });
  });
});
