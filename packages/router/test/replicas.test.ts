import {
  KvEventBuilder,
  KvRouter,
  NoWorkersError,
  RouterInvalidArgumentError,
  validateReplicaMessage,
  type ReplicaMessage,
} from '@dynamo-ts/router';
import { prng } from './model';

const PROMPT = Array.from({ length: 64 }, (_, i) => 1000 + i);
const OTHER = Array.from({ length: 64 }, (_, i) => 5000 + i);

function routers(n: number, workers = ['w0', 'w1', 'w2', 'w3'], sameSeed = false) {
  let t = 0;
  const warnings: string[] = [];
  const rs = Array.from(
    { length: n },
    (_, i) =>
      new KvRouter({
        blockSize: 4,
        routerId: `r${i}`,
        now: () => t,
        random: prng(sameSeed ? 1 : i + 1),
        onWarning: (m) => warnings.push(m),
      }),
  );
  for (const r of rs) for (const w of workers) r.addWorker(w);
  /** Delivers every queued message of every replica to all the others (JSON round trip). */
  const sync = (): number => {
    let n = 0;
    for (const from of rs) {
      for (const m of from.takeReplicaMessages()) {
        const wire: unknown = JSON.parse(JSON.stringify(m));
        for (const to of rs) if (to !== from) to.applyReplicaMessage(wire);
        n++;
      }
    }
    return n;
  };
  return { rs, sync, warnings, advance: (ms: number) => (t += ms) };
}

describe('fencing', () => {
  it('a fenced worker is never chosen, even for its cached prefix, and comes back when unfenced', () => {
    const r = new KvRouter({ blockSize: 4, now: () => 0, random: prng(1) });
    r.addWorker('w0');
    r.addWorker('w1');
    const kv = new KvEventBuilder('w0', 4);
    expect(r.applyEvent(kv.stored(PROMPT, 0)).status).toBe('applied');
    expect(r.route({ tokenIds: PROMPT, record: false }).worker_id).toBe('w0');
    expect(r.fence('w0', 'no_responders')).toBe(true);
    expect(r.fence('w0')).toBe(false);
    expect(r.isFenced('w0')).toBe(true);
    for (let i = 0; i < 20; i++) expect(r.route({ tokenIds: PROMPT, record: false }).worker_id).toBe('w1');
    expect(r.stats().workers.find((w) => w.workerId === 'w0')!.fenced?.reason).toBe('no_responders');
    expect(r.unfence('w0')).toBe(true);
    expect(r.route({ tokenIds: PROMPT, record: false }).worker_id).toBe('w0');
    expect(r.route({ tokenIds: PROMPT, record: false }).overlap_blocks).toBe(16);
  });

  it('all workers fenced: NoWorkersError naming the fences; unknown workers are not fenced', () => {
    const r = new KvRouter({ blockSize: 4 });
    r.addWorker('w0');
    expect(r.fence('nope')).toBe(false);
    r.fence('w0');
    expect(() => r.route(PROMPT)).toThrow(NoWorkersError);
    expect(() => r.route(PROMPT)).toThrow(/1 of 1 fenced/);
  });

  it('a report within the hold does not unfence (it may predate the death); one after it does', () => {
    let t = 0;
    const r = new KvRouter({ blockSize: 4, now: () => t, fenceHoldMs: 1000 });
    r.addWorker('w0');
    r.addWorker('w1');
    r.fence('w0');
    t = 500;
    r.applyLoad({ worker_id: 'w0', active_blocks: 0 });
    expect(r.isFenced('w0')).toBe(true);
    t = 1500;
    r.applyEvent(new KvEventBuilder('w0', 4).stored(PROMPT, 0));
    expect(r.isFenced('w0')).toBe(false);
  });

  it('a first token from a fenced worker unfences it at once', () => {
    const r = new KvRouter({ blockSize: 4, random: prng(2) });
    r.addWorker('w0');
    const d = r.route(PROMPT);
    r.fence('w0');
    r.onFirstToken(d.request_id);
    expect(r.isFenced('w0')).toBe(false);
  });

  it('a fence is cluster-wide: peers stop choosing the worker, and an unfence brings it back everywhere', () => {
    const { rs, sync } = routers(3, ['w0', 'w1']);
    for (const r of rs) r.applyEvent(new KvEventBuilder('w0', 4).stored(PROMPT, 0));
    rs[0]!.fence('w0', 'marked_down');
    sync();
    for (const r of rs) expect(r.route({ tokenIds: PROMPT, record: false }).worker_id).toBe('w1');
    expect(rs[2]!.fencedWorkers().get('w0')!.reason).toBe('peer:r0:marked_down');
    rs[1]!.unfence('w0');
    sync();
    for (const r of rs) expect(r.route({ tokenIds: PROMPT, record: false }).worker_id).toBe('w0');
  });
});

describe('replica protocol', () => {
  it("a replica counts the others' decisions: different prompts routed at one instant spread out", () => {
    // Without sharing, replicas with the same view (and seed) all pick the same idle worker.
    const prompt = (i: number): number[] => OTHER.map((t) => t + 100 * i);
    const alone = routers(4, undefined, true);
    const lonely = alone.rs.map((r, i) => r.route(prompt(i)).worker_id);
    expect(new Set(lonely).size).toBe(1);
    const { rs, sync } = routers(4, undefined, true);
    const picks: string[] = [];
    for (const [i, r] of rs.entries()) {
      picks.push(r.route(prompt(i)).worker_id);
      sync();
    }
    expect(new Set(picks).size).toBe(4);
    expect(rs[3]!.stats().replicas).toEqual({ peerRequests: 3, peers: 3 });
  });

  it('first_token and finished release the load on every replica', () => {
    const { rs, sync } = routers(2);
    const d = rs[0]!.route(OTHER);
    sync();
    const seen = () => rs[1]!.stats().workers.find((w) => w.workerId === d.worker_id)!;
    expect(seen().activePrefillTokens).toBe(64);
    expect(seen().inflightRequests).toBe(1);
    rs[0]!.onFirstToken(d.request_id);
    sync();
    expect(seen().activePrefillTokens).toBe(0);
    expect(seen().activeBlocks).toBe(16);
    rs[0]!.onFinished(d.request_id);
    sync();
    expect(seen().inflightRequests).toBe(0);
    expect(seen().activeBlocks).toBe(0);
  });

  it('a state message replaces what a peer held (lost messages are repaired); leave releases all', () => {
    const { rs } = routers(2);
    const a = rs[0]!.route(OTHER);
    rs[0]!.route(PROMPT);
    rs[0]!.onFirstToken(a.request_id);
    rs[0]!.takeReplicaMessages(); // lost
    const state = rs[0]!.replicaState()!;
    expect(state.requests).toHaveLength(2);
    expect(rs[1]!.applyReplicaMessage(JSON.parse(JSON.stringify(state))).applied).toBe(true);
    expect(rs[1]!.stats().replicas.peerRequests).toBe(2);
    const w = rs[1]!.stats().workers.find((x) => x.workerId === a.worker_id)!;
    expect(w.inflightRequests).toBeGreaterThanOrEqual(1);
    rs[0]!.onFinished(a.request_id);
    rs[0]!.takeReplicaMessages(); // lost again
    rs[1]!.applyReplicaMessage(rs[0]!.replicaState());
    expect(rs[1]!.stats().replicas.peerRequests).toBe(1);
    expect(rs[1]!.applyReplicaMessage({ type: 'leave', router_id: 'r0' }).applied).toBe(true);
    expect(rs[1]!.stats().inflightRequests).toBe(0);
  });

  it('own messages and bad messages are ignored without throwing; nothing is queued without a routerId', () => {
    const { rs } = routers(1);
    const r = rs[0]!;
    r.route(OTHER);
    const own = r.takeReplicaMessages();
    expect(own.map((m) => m.type)).toEqual(['routed']);
    expect(r.applyReplicaMessage(own[0]).applied).toBe(false);
    const bad: unknown[] = [
      null,
      42,
      'x',
      {},
      { type: 'routed', router_id: 'p' },
      {
        type: 'routed',
        router_id: 'p',
        request_id: 'q',
        worker_id: 'w0',
        prefill_tokens: -1,
        blocks: 1,
        sequence_hashes: [],
      },
      {
        type: 'routed',
        router_id: 'p',
        request_id: 'q',
        worker_id: 'w0',
        prefill_tokens: 1,
        blocks: 0,
        sequence_hashes: ['ab'],
      },
      {
        type: 'routed',
        router_id: 'p',
        request_id: 'q',
        worker_id: 'w0',
        prefill_tokens: 1,
        blocks: 1,
        sequence_hashes: ['xyz'],
      },
      { type: 'state', router_id: 'p', requests: 'all', fenced: [] },
      { type: 'fence', router_id: 'p', worker_id: '' },
      { type: 'explode', router_id: 'p' },
      { type: 'leave', router_id: 'x'.repeat(10_000) },
    ];
    for (const m of bad) {
      expect(validateReplicaMessage(m).ok).toBe(false);
      expect(r.applyReplicaMessage(m).applied).toBe(false);
    }
    // A routed message for an unknown worker is ignored.
    const unknown: ReplicaMessage = {
      type: 'routed',
      router_id: 'p',
      request_id: 'q',
      worker_id: 'ghost',
      prefill_tokens: 1,
      blocks: 1,
      sequence_hashes: [],
    };
    expect(r.applyReplicaMessage(unknown)).toEqual({ applied: false, reason: 'unknown worker' });
    const single = new KvRouter({ blockSize: 4 });
    single.addWorker('w0');
    single.route(OTHER);
    single.fence('w0');
    expect(single.takeReplicaMessages()).toEqual([]);
    expect(single.replicaState()).toBeUndefined();
    expect(() => new KvRouter({ routerId: '' })).toThrow(RouterInvalidArgumentError);
  });

  it('a peer that never sends finished cannot grow memory: tracked requests are capped', () => {
    const r = new KvRouter({ blockSize: 4, routerId: 'me', maxTrackedRequests: 100 });
    r.addWorker('w0');
    for (let i = 0; i < 1000; i++) {
      r.applyReplicaMessage({
        type: 'routed',
        router_id: 'flood',
        request_id: `q${i}`,
        worker_id: 'w0',
        prefill_tokens: 10,
        blocks: 2,
        sequence_hashes: [i.toString(16), (i + 1_000_000).toString(16)],
      });
    }
    const s = r.stats();
    expect(s.inflightRequests).toBe(100);
    expect(s.workers[0]!.inflightRequests).toBe(100);
    expect(s.workers[0]!.activePrefillTokens).toBe(1000);
    expect(s.replicas.peerRequests).toBeLessThanOrEqual(200);
  });
});
