import { setTimeout as sleep } from 'node:timers/promises';
import { describeWithBinaries } from '../../../../test/support/integration';
import {
  CONFIGS,
  describeFailures,
  failureSummary,
  recoveryMs,
  startLoad,
  tally,
  waitForWorkers,
  withCluster,
  type FaultCluster,
  type RequestOutcome,
} from './harness';
import { settleCase } from './report';

jest.setTimeout(120_000);

const WORKERS = ['node-a', 'node-b'];

/** Frontend and two workers streaming a token every `tokenDelayMs`. */
async function deploy(
  c: FaultCluster,
  tokenDelayMs: number,
): Promise<{ url: string; procs: Array<{ running: boolean; label: string }> }> {
  const workerArgs = ['-f', CONFIGS.agg, `--DummyWorker.token_delay_ms=${tokenDelayMs}`];
  const [{ url, proc }, a, b] = await Promise.all([
    c.serveFrontend(['-f', CONFIGS.agg]),
    c.serveWorker('node-a', workerArgs),
    c.serveWorker('node-b', workerArgs),
  ]);
  await waitForWorkers(url, 2);
  return { url, procs: [proc, a, b] };
}

const between = (outcomes: readonly RequestOutcome[], from: number, to: number): RequestOutcome[] =>
  outcomes.filter((r) => r.sentAt >= from && r.sentAt < to);

describeWithBinaries(['nats-server', 'etcd'], 'fault injection: broker outages', () => {
  it('restart nats-server under traffic: serving resumes within 5 s of it coming back', async () => {
    await withCluster('restart nats-server', async (c) => {
      // ~25 tokens at 20 ms: about 0.5 s a stream, so several are streaming when the broker stops.
      const { url, procs } = await deploy(c, 20);
      const load = startLoad({
        url,
        ratePerSec: 10,
        prompt: (i) => `Tell me a joke number ${i} while the message broker restarts under us, and finish it properly`,
        idPrefix: 'nats',
        workers: WORKERS,
        timeoutMs: 20_000,
      });
      await sleep(2000);
      const downAt = Date.now();
      await c.nats.stop();
      await sleep(2000);
      await c.nats.start();
      const backAt = Date.now();
      // Long enough after the 5 s target to measure a slower recovery, not just miss it.
      await sleep(15_000);
      const outcomes = await load.stop();

      const t = tally(outcomes);
      // Answered before the stop; streaming when it stopped; sent while it was down.
      const before = tally(outcomes.filter((r) => r.doneAt < downAt));
      const cut = tally(outcomes.filter((r) => r.sentAt < downAt && r.doneAt >= downAt));
      const outage = between(outcomes, downAt, backAt);
      const afterBack = between(outcomes, backAt, Number.POSITIVE_INFINITY);
      const settled = between(outcomes, backAt + 5000, Number.POSITIVE_INFINITY);
      const rec = recoveryMs(outcomes, backAt);
      const o = tally(outage);
      const a = tally(afterBack);
      settleCase(
        {
          case: '3 restart nats-server under traffic (down 2 s)',
          ...t,
          recovery_ms: rec ?? null,
          notes:
            `streaming at the stop: ${cut.sent} (${cut.ok} ok); ` +
            `sent while down: ${o.sent} (${o.ok} ok, ${o.unavailable} 503, ${o.lost} lost); ` +
            `after it came back: ${a.ok}/${a.sent} ok; failures: ${failureSummary(outcomes)}`,
        },
        () => {
          expect(procs.filter((p) => !p.running).map((p) => p.label)).toEqual([]);
          // Before the outage everything works; nothing is ever corrupted.
          expect(before.ok).toBe(before.sent);
          expect(t.corrupted).toBe(0);
          // Serving resumes within 5 s of nats-server coming back, and stays up.
          expect(rec).toBeDefined();
          expect(rec!).toBeLessThanOrEqual(5000);
          expect(settled.length).toBeGreaterThan(80);
          expect(describeFailures(settled)).toBe('');
        },
      );
    });
  });

  it('stop etcd for 15 s under traffic: no request fails', async () => {
    await withCluster('stop etcd for 15 s', async (c) => {
      const { url, procs } = await deploy(c, 5);
      const load = startLoad({
        url,
        ratePerSec: 5,
        prompt: (i) => `${i % 2 ? 'Tell me' : 'Which team'} during the etcd outage ${i}`,
        idPrefix: 'etcd',
        workers: WORKERS,
      });
      await sleep(1000);
      const downAt = Date.now();
      await c.etcd.stop();
      await sleep(15_000);
      await c.etcd.start();
      const backAt = Date.now();
      await sleep(3000);
      const outcomes = await load.stop();
      // Every registration is back: the frontend still sees both workers.
      await waitForWorkers(url, 2, 10_000);

      const t = tally(outcomes);
      const during = tally(between(outcomes, downAt, backAt));
      settleCase(
        {
          case: '4 stop etcd for 15 s under traffic',
          ...t,
          recovery_ms: recoveryMs(outcomes, downAt) ?? null,
          notes: `${during.ok}/${during.sent} ok while etcd was down; every process kept running`,
        },
        () => {
          expect(procs.filter((p) => !p.running).map((p) => p.label)).toEqual([]);
          expect(describeFailures(outcomes)).toBe('');
          expect(during.sent).toBeGreaterThan(60);
          expect(t.ok).toBe(t.sent);
        },
      );
    });
  });
});
