import { setTimeout as sleep } from 'node:timers/promises';
import { describeWithBinaries } from '../../../../test/support/integration';
import {
  CONFIGS,
  describeFailures,
  drainedPrefillStream,
  prefillStream,
  startLoad,
  streamOne,
  tally,
  waitForWorkers,
  withCluster,
  type FaultCluster,
  type FrontendProcess,
  type LogLine,
  type ServiceProcess,
  watchPrefillQueue,
} from './harness';
import { settleCase } from './report';

jest.setTimeout(120_000);

const DECODE = ['node-a', 'node-b'];

/** The disaggregated graph (configs/disagg.yaml): frontend and two decode workers. */
async function deployDecode(c: FaultCluster): Promise<{ frontend: FrontendProcess; decode: ServiceProcess[] }> {
  const [frontend, ...decode] = await Promise.all([
    c.serveFrontend(['-f', CONFIGS.disagg]),
    ...DECODE.map((n) => c.serveWorker(n, ['-f', CONFIGS.disagg])),
  ]);
  await waitForWorkers(frontend.url, DECODE.length);
  return { frontend, decode };
}

/** How many times each request id occurs among `lines` (log lines with a `request_id`). */
function perRequest(lines: readonly LogLine[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const l of lines) {
    if (typeof l.request_id === 'string') m.set(l.request_id, (m.get(l.request_id) ?? 0) + 1);
  }
  return m;
}

describeWithBinaries(['nats-server', 'etcd'], 'fault injection: disaggregated prefill', () => {
  it('kill -9 one of two prefill workers 0.5 s into a burst of 20: 20/20 correct, none answered twice', async () => {
    await withCluster('kill -9 a prefill worker', async (c) => {
      const { frontend, decode } = await deployDecode(c);
      // Prefill workers last: the last process to open the queue sets the consumer's ack wait, and
      // 1 s (instead of disagg.yaml's 10 s) lets the killed worker's job be redelivered before the
      // decode worker's 5 s deadline.
      const prefillArgs = ['--PrefillWorker.delay_ms=300', '--PrefillWorker.ack_wait_ms=1000'];
      const [victim, survivor] = await Promise.all([
        c.servePrefillWorker('prefill-1', prefillArgs),
        c.servePrefillWorker('prefill-2', prefillArgs),
      ]);
      const ackWaitNs = (await prefillStream(c.nats, c.namespace)).consumer_detail?.[0]?.config?.ack_wait;

      const watch = watchPrefillQueue(c.nats, c.namespace);
      const load = startLoad({
        url: frontend.url,
        ratePerSec: 1000,
        count: 20,
        prompt: (i) => `Prefill burst request ${i}: a prompt long enough to be worth prefilling remotely`,
        idPrefix: 'burst',
        workers: DECODE,
      });
      await load.allSent;
      await sleep(500);
      victim.kill('SIGKILL');
      const outcomes = await load.finished();
      await victim.exited;

      // What the stream and its consumer went through, from nats-server's monitoring endpoint:
      // once the survivor has worked through the backlog (jobs past their deadline are dropped),
      // every job was delivered and none is left.
      const stream = await drainedPrefillStream(c.nats, c.namespace);
      const peaks = await watch.stop();
      const consumer = stream.consumer_detail?.[0];
      // Lines about the last requests may still be on their way from the processes.
      await Promise.all([survivor.settled(), frontend.proc.settled(), ...decode.map((d) => d.settled())]);
      const redeliveredDone = survivor
        .logs('prefill done')
        .filter((l) => typeof l.delivery === 'number' && l.delivery > 1).length;
      const fallbacks = decode.flatMap((d) => d.logs('remote prefill did not complete in time; prefilling locally'));
      const doneBy = { victim: victim.logs('prefill done'), survivor: survivor.logs('prefill done') };
      const prefilled = perRequest([...doneBy.victim, ...doneBy.survivor]);
      const answers = perRequest(
        frontend.proc
          .logs('http request')
          .filter((l) => typeof l.request_id === 'string' && l.request_id.startsWith('burst-')),
      );
      const t = tally(outcomes);
      settleCase(
        {
          case: '5 kill -9 one of two prefill workers (20 concurrent)',
          ...t,
          recovery_ms: null,
          notes:
            `jsz: ${consumer?.delivered.stream_seq ?? '?'} jobs delivered, num_redelivered peak ${peaks.redelivered} ` +
            `(${peaks.samples} samples); prefill-2 finished ${redeliveredDone} redelivered job(s); ` +
            `${fallbacks.length} local fallbacks; prefilled by prefill-1 ${doneBy.victim.length}, ` +
            `prefill-2 ${doneBy.survivor.length}; ${[...prefilled.values()].filter((n) => n > 1).length} prefilled twice`,
        },
        () => {
          expect(ackWaitNs).toBe(1000 * 1_000_000);
          expect(describeFailures(outcomes)).toBe('');
          expect(t).toEqual({ sent: 20, ok: 20, lost: 0, unavailable: 0, corrupted: 0, duplicated: 0 });
          // One HTTP answer per request.
          expect(answers.size).toBe(20);
          expect([...answers.values()].every((n) => n === 1)).toBe(true);
          // The stream delivered every job; the killed worker's jobs were redelivered to the
          // survivor, or their decode workers prefilled them locally at the deadline.
          expect(consumer).toBeDefined();
          expect(consumer!.delivered.stream_seq).toBeGreaterThanOrEqual(20);
          expect(consumer!.num_ack_pending).toBe(0);
          expect(peaks.redelivered + fallbacks.length).toBeGreaterThan(0);
          expect(doneBy.survivor.length).toBeGreaterThan(0);
        },
      );
    });
  });

  it("answers the seed's disaggregated request (request_id 12345) with two decode workers and one prefill worker", async () => {
    await withCluster('seed disaggregated request', async (c) => {
      const { frontend } = await deployDecode(c);
      const prefill = await c.servePrefillWorker('prefill-1');
      const prompt = 'This is prefill disagg serving example';
      const r = await streamOne(frontend.url, {
        index: 0,
        prompt,
        requestId: '12345',
        workers: DECODE,
        timeoutMs: 20_000,
      });
      // The prefill worker acks after it replied (the answer can arrive first): read the stream's
      // state once it logged 'prefill done', which it does after the ack.
      await prefill.waitForLog((l) => l.message === 'prefill done' && l.request_id === '12345', 5000);
      await prefill.settled();
      const stream = await prefillStream(c.nats, c.namespace);
      const consumer = stream.consumer_detail?.[0];
      const done = prefill.logs('prefill done').filter((l) => l.request_id === '12345');
      settleCase(
        {
          case: '6 seed disaggregated request (2 decode, 1 prefill)',
          ...tally([r]),
          recovery_ms: null,
          notes:
            `answer ${JSON.stringify(r.text)}; jsz: ${consumer?.delivered.stream_seq ?? '?'} delivered, ` +
            `${consumer?.ack_floor.stream_seq ?? '?'} acked, ${stream.state.messages} left in the stream`,
        },
        () => {
          expect(describeFailures([r])).toBe('');
          expect(r.text).toMatch(/^This is prefill disagg serving example_GeneratedBy_node-[ab]$/);
          expect(done).toHaveLength(1);
          expect(consumer).toBeDefined();
          expect(consumer!.delivered.stream_seq).toBe(1);
          expect(consumer!.ack_floor.stream_seq).toBe(1);
          expect(consumer!.num_ack_pending).toBe(0);
          expect(stream.state.messages).toBe(0);
        },
      );
    });
  });
});
