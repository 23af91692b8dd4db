import { setTimeout as sleep } from 'node:timers/promises';
import { describeWithBinaries } from '../../../../test/support/integration';
import {
  CONFIGS,
  describeFailures,
  recoveryMs,
  startLoad,
  tally,
  waitForWorkers,
  waitUntil,
  withCluster,
  type RequestOutcome,
} from './harness';
import { settleCase } from './report';

jest.setTimeout(120_000);

/** A prompt of ~40 tokens (about 0.8 s of streaming at 20 ms a token), unique per request. */
const longPrompt = (tag: string, i: number): string =>
  `${tag} request ${i}: the quick brown fox jumps over the lazy dog while the cluster loses a worker, ` +
  `and every token of this answer must still arrive exactly once and in order`;

/** Requests in flight at `at` (sent before, answered after). */
const inFlightAt = (outcomes: readonly RequestOutcome[], at: number): number =>
  outcomes.filter((r) => r.sentAt <= at && r.doneAt >= at).length;

describeWithBinaries(['nats-server', 'etcd'], 'fault injection: workers dying and draining', () => {
  it('kill -9 one of two workers while 100 streaming requests arrive at 10/s: none lost or corrupted', async () => {
    await withCluster('kill -9 one of two workers', async (c) => {
      const workerArgs = ['-f', CONFIGS.agg, '--DummyWorker.token_delay_ms=20'];
      const [{ url, proc: frontend }, victim] = await Promise.all([
        c.serveFrontend(['-f', CONFIGS.agg]),
        c.serveWorker('node-a', workerArgs),
        c.serveWorker('node-b', workerArgs),
      ]);
      await waitForWorkers(url, 2);

      const load = startLoad({
        url,
        ratePerSec: 10,
        count: 100,
        prompt: (i) => longPrompt('kill', i),
        idPrefix: 'kill',
        workers: ['node-a', 'node-b'],
      });
      // 3 s in: about 30 sent, several streaming on each worker.
      await sleep(3000);
      const killedAt = Date.now();
      victim.kill('SIGKILL');
      const outcomes = await load.finished();
      const exit = await victim.exited;

      const t = tally(outcomes);
      await frontend.settled();
      const migrations = frontend.logs('worker died mid-stream; migrating').length;
      const failovers = frontend.logs('worker unavailable; routing again').length;
      const rec = recoveryMs(outcomes, killedAt);
      settleCase(
        {
          case: '1 kill -9 one of two workers (100 req, 10/s)',
          ...t,
          recovery_ms: rec ?? null,
          notes:
            `${inFlightAt(outcomes, killedAt)} in flight at the kill; ${migrations} migrated mid-stream, ` +
            `${failovers} failed over before their first token`,
        },
        () => {
          expect(exit.signal).toBe('SIGKILL');
          expect(describeFailures(outcomes)).toBe('');
          expect(t).toEqual({ sent: 100, ok: 100, lost: 0, unavailable: 0, corrupted: 0, duplicated: 0 });
          // The kill did break streams (else this case would show nothing).
          expect(migrations).toBeGreaterThan(0);
          // Requests sent after the kill are answered by the survivor.
          const late = outcomes.filter((r) => r.sentAt > killedAt + 100);
          expect(late.length).toBeGreaterThan(50);
          expect(late.filter((r) => r.worker !== 'node-b')).toEqual([]);
        },
      );
    });
  });

  it('SIGTERM a worker with 10 streams in flight: 10/10 complete and it exits 0 within its drain bound', async () => {
    await withCluster('SIGTERM a worker with 10 streams', async (c) => {
      const drainTimeoutS = 10;
      const workerArgs = ['-f', CONFIGS.agg, '--DummyWorker.token_delay_ms=20', `--drain-timeout=${drainTimeoutS}`];
      const [{ url, proc: frontend }, victim] = await Promise.all([
        c.serveFrontend(['-f', CONFIGS.agg]),
        c.serveWorker('node-a', workerArgs),
      ]);
      await waitForWorkers(url, 1);

      // ~100 tokens each: about 2 s of streaming.
      const prompt = (i: number): string => `${longPrompt('drain', i)}; ${longPrompt('and again', i)}`;
      const load = startLoad({
        url,
        ratePerSec: 100,
        count: 10,
        prompt,
        idPrefix: 'drain',
        workers: ['node-a'],
      });
      await waitUntil(() => load.started === 10, 'the 10 streams to start');
      // Bring up a second worker for the traffic that follows, then stop the first gracefully.
      const successor = c.serveWorker('node-b', workerArgs);
      const termAt = Date.now();
      victim.kill('SIGTERM');
      const [outcomes, exit] = await Promise.all([load.finished(), victim.exited]);
      const drainedMs = exit.at - termAt;
      const unfinishedAtTerm = outcomes.filter((r) => r.doneAt > termAt).length;

      await successor;
      await waitForWorkers(url, 1);
      const after = await startLoad({
        url,
        ratePerSec: 10,
        count: 5,
        prompt: (i) => `after the drain ${i}`,
        idPrefix: 'after-drain',
        workers: ['node-b'],
      }).finished();

      const t = tally(outcomes);
      const drained = victim.logs().some((l) => l.message === 'stopped');
      // Deregistered first: the Processor saw node-a leave while its streams were still running.
      const left = frontend.logs('worker left').find((l) => l.name === 'node-a');
      const leftAt = left ? Date.parse(String(left.timestamp)) : Number.NaN;
      const lastDone = Math.max(...outcomes.map((r) => r.doneAt));
      settleCase(
        {
          case: '2 SIGTERM a worker with 10 streams in flight',
          ...t,
          recovery_ms: null,
          notes:
            `${unfinishedAtTerm} streaming at SIGTERM; exit code ${exit.code} after ${(drainedMs / 1000).toFixed(2)} s ` +
            `(bound ${drainTimeoutS} s); left discovery ${((leftAt - termAt) / 1000).toFixed(2)} s after SIGTERM, ` +
            `${((lastDone - leftAt) / 1000).toFixed(2)} s before its last stream ended; ` +
            `${tally(after).ok}/5 answered by node-b after`,
        },
        () => {
          expect(describeFailures(outcomes)).toBe('');
          expect(t).toEqual({ sent: 10, ok: 10, lost: 0, unavailable: 0, corrupted: 0, duplicated: 0 });
          expect(unfinishedAtTerm).toBe(10);
          expect(exit).toMatchObject({ code: 0, signal: null });
          expect(drained).toBe(true);
          expect(leftAt).toBeLessThan(lastDone);
          // The drain bound plus the process's own teardown (flush logs, close NATS and etcd).
          expect(drainedMs).toBeLessThanOrEqual(drainTimeoutS * 1000 + 2000);
          expect(describeFailures(after)).toBe('');
          expect(tally(after).ok).toBe(5);
        },
      );
    });
  });
});
