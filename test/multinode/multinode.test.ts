import { randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { NetnsDeployment, ROOT, netnsUnavailable, parseCurl, sleep, type CurlAnswer, type NodeProcess } from './netns';

/**
 * The seed's deployments across three network namespaces (deploy/netns): nats-server and etcd on
 * node1, the graph and a decode worker on node1, a decode worker on node2, a prefill worker on
 * node3, every process started with the documented commands and NATS_SERVER / ETCD_ENDPOINTS
 * pointing at node1's address. Then node2's link is cut under traffic and restored.
 *
 * Needs root and iproute2: without them the suite is skipped with the reason printed (also
 * under CI=true: the issue asks for this run wherever it is possible). When they are there, a
 * failing up.sh fails the suite.
 */

jest.setTimeout(180_000);

const LEASE_TTL_S = 3;
const HELLO = path.join(ROOT, 'examples/hello-world');
const DYNAMO_TS = path.join(ROOT, 'node_modules/.bin/dynamo-ts');
const unavailable = netnsUnavailable();

if (unavailable) {
  process.stderr.write(`skipping multi-node suite: ${unavailable}\n`);
  describe.skip('three nodes in network namespaces', () => {
    it('needs root and iproute2', () => undefined);
  });
} else {
  describe('three nodes in network namespaces', () => {
    const prefix = process.env.DYNAMO_NETNS || `dyn-${randomBytes(3).toString('hex')}`;
    const subnet = process.env.DYNAMO_NETNS_SUBNET || '10.213.0';
    const logDir = path.join(os.tmpdir(), `dynamo-multinode-${prefix}`);
    const d = new NetnsDeployment(prefix, subnet, logDir);
    const node1 = d.address(1);
    const namespace = `mn-${randomBytes(3).toString('hex')}`;
    const env = {
      NATS_SERVER: `nats://${node1}:4222`,
      ETCD_ENDPOINTS: `http://${node1}:2379`,
      DYNAMO_NAMESPACE: namespace,
      DYNAMO_LEASE_TTL: String(LEASE_TTL_S),
      DYNAMO_LOG_FORMAT: 'json',
      DYNAMO_LOG_LEVEL: 'info',
    };
    let failed = false;
    let graph: NodeProcess;

    /** `npx dynamo-ts serve ...` from examples/hello-world, as docs/deployment.md says. */
    const serve = (n: number, name: string, args: string[], extraEnv: Record<string, string> = {}): NodeProcess =>
      d.start(n, name, [DYNAMO_TS, 'serve', ...args], { cwd: HELLO, env: { ...env, ...extraEnv } });

    /** The seed's curl, run inside node1. */
    const curl = async (prompt: string, requestId: string): Promise<CurlAnswer> =>
      parseCurl(
        await d.exec(
          1,
          [
            'curl',
            '-sS',
            '-N',
            '--max-time',
            '60',
            '-X',
            'POST',
            `http://${node1}:8000/generate`,
            '-H',
            'accept: text/event-stream',
            '-H',
            'Content-Type: application/json',
            '-d',
            JSON.stringify({ prompt, request_id: requestId }),
            '-w',
            '\n%{http_code}',
          ],
          { timeoutMs: 70_000 },
        ),
      );

    const health = async (): Promise<{ ok?: boolean; workers?: number } | undefined> => {
      const r = await d.exec(1, ['curl', '-sS', '--max-time', '2', `http://${node1}:8000/health`]);
      try {
        return JSON.parse(r.stdout) as { ok?: boolean; workers?: number };
      } catch {
        return undefined;
      }
    };

    const waitForWorkers = async (n: number, timeoutMs = 60_000): Promise<void> => {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const h = await health();
        if (h?.workers === n) return;
        if (!graph.running) throw new Error(`the graph exited (see ${graph.logFile})`);
        if (Date.now() > until)
          throw new Error(`frontend did not see ${n} workers within ${timeoutMs} ms: ${JSON.stringify(h)}`);
        await sleep(250);
      }
    };

    /** Instance key -> worker name of the DummyWorkers registered in etcd, read from node1. */
    const registeredWorkers = async (): Promise<Map<string, string>> => {
      const r = await d.exec(1, [
        'etcdctl',
        `--endpoints=http://${node1}:2379`,
        '--dial-timeout=1s',
        '--command-timeout=2s',
        'get',
        '--prefix',
        `dynamo/${namespace}/instances/DummyWorker/`,
      ]);
      if (r.code !== 0) throw new Error(`etcdctl failed: ${r.stderr}`);
      const lines = r.stdout.split('\n').filter((l) => l.length > 0);
      const out = new Map<string, string>();
      for (let i = 0; i + 1 < lines.length; i += 2) {
        out.set(lines[i]!, (JSON.parse(lines[i + 1]!) as { name: string }).name);
      }
      return out;
    };

    /** `it`, keeping the logs (and saying where) when the test fails. */
    const step = (name: string, fn: () => Promise<void>): void =>
      it(name, async () => {
        try {
          await fn();
        } catch (e) {
          failed = true;
          process.stderr.write(`multi-node test "${name}" failed; logs of every process in ${logDir}\n`);
          throw e;
        }
      });

    beforeAll(async () => {
      expect(existsSync(path.join(ROOT, 'packages/sdk/dist/cli/main.js'))).toBe(true);
      const up = d.script('up.sh');
      if (up.code !== 0) {
        failed = true;
        throw new Error(`deploy/netns/up.sh failed (exit ${up.code}): ${up.stderr}`);
      }
      // NATS and etcd on node1 with the documented script, bound to node1's address.
      const infra = await d.exec(1, [path.join(ROOT, 'deploy/local/start.sh')], {
        env: { DYNAMO_LOCAL_HOST: node1, DYNAMO_LOCAL_DIR: path.join(logDir, 'infra') },
      });
      if (infra.code !== 0) throw new Error(`deploy/local/start.sh failed: ${infra.stderr}`);
    });

    afterAll(async () => {
      const down = d.script('down.sh');
      if (!failed) rmSync(logDir, { recursive: true, force: true });
      else process.stderr.write(`multi-node logs kept in ${logDir}\n`);
      expect(down.code).toBe(0);
    });

    step("runs the seed's aggregated walkthrough: same-prefix requests go to the same node", async () => {
      graph = serve(1, 'graph', ['components/graph:Frontend', '-f', 'configs/agg.yaml'], { DYNAMO_LOG_LEVEL: 'debug' });
      const w1 = serve(1, 'agg-worker-node1', ['components/worker:DummyWorker', '-f', 'configs/agg.yaml'], {
        DYNAMO_WORKER_NAME: 'node1',
      });
      const w2 = serve(2, 'agg-worker-node2', ['components/worker:DummyWorker', '-f', 'configs/agg.yaml'], {
        DYNAMO_WORKER_NAME: 'node2',
      });
      await waitForWorkers(2);
      expect([...(await registeredWorkers()).values()].sort()).toEqual(['node1', 'node2']);

      const joke = await curl('Tell me a joke', 'id_number');
      await sleep(200); // KV events travel over NATS to the Router
      const series = await curl('Which team won 2020 World Series', 'id_number');
      await sleep(200);
      const fact = await curl('Tell me a fact', 'id_number');
      expect(joke).toMatchObject({ status: 200 });
      expect(joke.output).toMatch(/^Tell me a joke_GeneratedBy_node[12]$/);
      expect(series.output).toMatch(/^Which team won 2020 World Series_GeneratedBy_node[12]$/);
      expect(series.worker).not.toBe(joke.worker);
      expect(fact.output).toBe(`Tell me a fact_GeneratedBy_${joke.worker}`);
      expect(await Promise.all([w1.stop(), w2.stop()])).toEqual([0, 0]);
    });

    step("runs the seed's disaggregated walkthrough: the prefill worker on node3 pulls the job", async () => {
      serve(1, 'decode-node1', ['components/worker:DummyWorker', '-f', 'configs/disagg.yaml'], {
        DYNAMO_WORKER_NAME: 'node1',
      });
      serve(2, 'decode-node2', ['components/worker:DummyWorker', '-f', 'configs/disagg.yaml'], {
        DYNAMO_WORKER_NAME: 'node2',
      });
      const prefill = serve(
        3,
        'prefill-node3',
        ['components/prefill-worker:PrefillWorker', '-f', 'configs/disagg.yaml', '--PrefillWorker.delay_ms=300'],
        { DYNAMO_WORKER_NAME: 'node3' },
      );
      await waitForWorkers(2);
      await prefill.waitForLog((l) => l.message === 'service ready' && l.service === 'PrefillWorker', 60_000);

      const requestId = `disagg-${randomBytes(3).toString('hex')}`;
      const answer = await curl('This is prefill disagg serving example', requestId);
      expect(answer.status).toBe(200);
      expect(answer.output).toMatch(/^This is prefill disagg serving example_GeneratedBy_node[12]$/);
      // The job was pulled and completed by the prefill worker on node3, not prefilled locally.
      const done = await prefill.waitForLog((l) => l.message === 'prefill done' && l.request_id === requestId, 10_000);
      expect(done.request_id).toBe(requestId);
      const decodeLogs = d.processes.filter((p) => p.name.startsWith('decode-')).flatMap((p) => p.jsonLines());
      expect(
        decodeLogs.filter((l) => l.request_id === requestId && /prefilling locally/.test(String(l.message))),
      ).toEqual([]);
    });

    step(
      "cuts node2's link under traffic: routing leaves node2 within the lease TTL, no request is lost, node2 returns",
      async () => {
        const workersBefore = await registeredWorkers();
        const node2Key = [...workersBefore].find(([, name]) => name === 'node2')?.[0];
        expect(node2Key).toBeDefined();
        const node2Id = node2Key!.split('/').pop()!;

        // 4 requests/s with prompts that share no prefix, so both workers get traffic.
        const results: Array<{ i: number; prompt: string; sentAt: number; doneAt: number } & CurlAnswer> = [];
        const inflight = new Set<Promise<void>>();
        let sending = true;
        let i = 0;
        const load = (async () => {
          while (sending) {
            const n = i++;
            const prompt = `${randomBytes(2).toString('hex')} request ${n}`;
            const sentAt = Date.now();
            const p = curl(prompt, `load-${n}`).then((a) => {
              results.push({ ...a, i: n, prompt, sentAt, doneAt: Date.now() });
            });
            inflight.add(p);
            void p.finally(() => inflight.delete(p));
            await sleep(250);
          }
        })();
        const answeredBy = (name: string, after: number): number =>
          results.filter((r) => r.sentAt >= after && r.worker === name).length;
        const waitFor = async (
          what: string,
          cond: () => boolean | Promise<boolean>,
          timeoutMs: number,
        ): Promise<number> => {
          const start = Date.now();
          while (!(await cond())) {
            if (Date.now() - start > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
            await sleep(100);
          }
          return Date.now();
        };

        try {
          const start = Date.now();
          await waitFor(
            'both workers answered',
            () => answeredBy('node1', start) > 0 && answeredBy('node2', start) > 0,
            30_000,
          );

          const cutAt = Date.now();
          d.link(2, 'down');
          const goneAt = await waitFor(
            'node2 left etcd',
            async () => !(await registeredWorkers()).has(node2Key!),
            20_000,
          );
          // Let the deletion reach the graph's watches, then keep the traffic going for a while.
          const routedAwayFrom = goneAt + 500;
          await sleep(4000);

          const restoredAt = Date.now();
          d.link(2, 'up');
          const backAt = await waitFor('node2 answered again', () => answeredBy('node2', restoredAt) > 0, 60_000);
          sending = false;
          await load;
          await Promise.all([...inflight]);

          const routed = graph
            .jsonLines()
            .filter(
              (l) => l.message === 'routed' && typeof l.request_id === 'string' && l.request_id.startsWith('load-'),
            );
          const lateToNode2 = routed.filter((l) => {
            const r = results.find((x) => `load-${x.i}` === l.request_id);
            return l.worker_id === node2Id && r !== undefined && r.sentAt >= routedAwayFrom && r.sentAt < restoredAt;
          });
          // Requests routed to node2 and still unanswered at the cut: they waited for node2, then were routed again.
          const rerouted = routed.filter((l) => {
            const r = results.find((x) => `load-${x.i}` === l.request_id);
            return l.worker_id === node2Id && r !== undefined && r.doneAt >= cutAt && r.sentAt < restoredAt;
          });
          process.stderr.write(
            `multi-node link cut: ${results.length} requests, ${rerouted.length} routed to node2 around the cut ` +
              `and answered by ${rerouted.map((l) => results.find((x) => `load-${x.i}` === l.request_id)?.worker).join(',') || '-'}; ` +
              `node2 left etcd ${goneAt - cutAt} ms after the cut; answered again ${backAt - restoredAt} ms after the restore; ` +
              `slowest answer ${Math.max(...results.map((r) => r.doneAt - r.sentAt))} ms\n`,
          );
          // Every request answered, with the whole seed answer, by one of the two nodes.
          const bad = results.filter(
            (r) => r.status !== 200 || !new RegExp(`^${r.prompt}_GeneratedBy_node[12]$`).test(r.output),
          );
          expect(bad).toEqual([]);
          expect(results.length).toBe(i);
          // Discovery drops node2 within the lease TTL (etcd counts whole seconds; 1 s of slack for the poll).
          expect(goneAt - cutAt).toBeLessThanOrEqual(LEASE_TTL_S * 1000 + 1000);
          // Requests sent after that were not routed to node2 while its link was down.
          expect(routed.length).toBeGreaterThan(0);
          expect(lateToNode2.map((l) => l.request_id)).toEqual([]);
          expect(answeredBy('node2', restoredAt)).toBeGreaterThan(0);
          expect((await registeredWorkers()).get(node2Key!)).toBe('node2');
        } finally {
          sending = false;
          await load;
          await Promise.all([...inflight]);
        }
      },
    );
  });
}
