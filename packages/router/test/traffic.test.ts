import { KvRouter, SHARE_HALF_LIFE_PER_WORKER, TrafficTracker } from '@dynamo-ts/router';

describe('TrafficTracker (the work term’s traffic)', () => {
  it('averages the gaps between arrivals into a rate; unknown before two', () => {
    const t = new TrafficTracker();
    expect(t.rate).toBe(0);
    t.arrive(1000);
    expect(t.rate).toBe(0);
    for (let k = 1; k <= 10; k++) t.arrive(1000 + 10 * k);
    expect(t.rate).toBeCloseTo(0.1, 12);
    // A clock that goes back counts as no gap and does not move the reference back.
    t.arrive(500);
    t.arrive(1110);
    expect(t.rate).toBeCloseTo(12 / (10 * 10 + 0 + 10), 12);
    // Non-finite times are ignored.
    t.arrive(NaN);
    t.arrive(Infinity);
    expect(t.rate).toBeCloseTo(12 / 110, 12);
  });

  it('counts arrivals at one instant as an unbounded rate until a gap comes', () => {
    const t = new TrafficTracker();
    t.arrive(5);
    t.arrive(5);
    expect(t.rate).toBe(Infinity);
    t.arrive(25);
    expect(t.rate).toBeCloseTo(2 / 20, 12);
  });

  it('follows a change of rate after its warm-up, step by step', () => {
    const t = new TrafficTracker();
    let now = 0;
    for (let k = 0; k < 200; k++) t.arrive((now += 100));
    expect(t.rate).toBeCloseTo(0.01, 9);
    t.arrive((now += 10));
    // One short gap moves the mean gap by 5% of the difference, not to it.
    expect(1 / t.rate).toBeCloseTo(100 + 0.05 * (10 - 100), 9);
    for (let k = 0; k < 200; k++) t.arrive((now += 10));
    expect(t.rate).toBeCloseTo(0.1, 3);
  });

  it('gives each worker its share of the recent decisions, halving over 4 decisions per worker', () => {
    const t = new TrafficTracker();
    expect(t.share(0)).toBe(0);
    t.routed(0, 2);
    expect(t.share(0)).toBe(1);
    expect(t.share(1)).toBe(0);
    expect(t.share(99)).toBe(0);
    // Then 8 (= 4 x 2 workers) decisions to worker 1: worker 0's one decision weighs half of a new one.
    const h = SHARE_HALF_LIFE_PER_WORKER * 2;
    for (let k = 0; k < h; k++) t.routed(1, 2);
    const d = Math.pow(2, 1 / h);
    let ones = 0;
    for (let k = 1; k <= h; k++) ones += Math.pow(d, k);
    expect(t.share(0)).toBeCloseTo(1 / (1 + ones), 12);
    expect(t.share(0) + t.share(1)).toBeCloseTo(1, 12);
    // A worker that leaves no longer counts; its slot starts from 0 when reused.
    t.forget(1);
    expect(t.share(0)).toBeCloseTo(1, 12);
    expect(t.share(1)).toBe(0);
    t.forget(42);
  });

  it('stays finite and normalised over a long run (the growing unit is rescaled)', () => {
    const t = new TrafficTracker();
    for (let k = 0; k < 20_000; k++) t.routed(k % 3 === 0 ? 0 : 1 + (k % 2), 1);
    const shares = [0, 1, 2].map((s) => t.share(s));
    for (const s of shares) expect(Number.isFinite(s)).toBe(true);
    expect(shares.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 9);
    expect(shares[0]).toBeGreaterThan(0.25);
    expect(shares[0]).toBeLessThan(0.42);
  });
});

describe('KvRouter traffic', () => {
  const make = (routerId: string, clock: { t: number }): KvRouter => {
    const r = new KvRouter({ blockSize: 2, now: () => clock.t, routerId, random: () => 0 });
    r.setWorkers(['a', 'b', 'c', 'd']);
    return r;
  };

  it('reports the rate and the shares; a probe (record: false) is not an arrival', () => {
    const clock = { t: 0 };
    const r = make('r1', clock);
    for (let k = 0; k < 10; k++) {
      clock.t = 100 * k;
      r.route({ tokenIds: [k, k + 1, k + 2], requestId: `q${k}` });
    }
    clock.t = 905;
    r.route({ tokenIds: [1, 2], record: false });
    const s = r.stats();
    expect(s.arrivalsPerSecond).toBeCloseTo(10, 9);
    expect(s.workers.reduce((a, w) => a + w.routedShare, 0)).toBeCloseTo(1, 9);
    // Removing a worker drops its share.
    const gone = s.workers.find((w) => w.routedShare > 0)!.workerId;
    r.removeWorker(gone);
    expect(r.stats().workers.reduce((a, w) => a + w.routedShare, 0)).toBeCloseTo(1, 9);
  });

  it("counts its peers' decisions too: each replica sees the fleet's rate, not its own share of it", () => {
    const clock = { t: 0 };
    const a = make('ra', clock);
    const b = make('rb', clock);
    for (let k = 0; k < 40; k++) {
      clock.t = 50 * k;
      const r = k % 2 === 0 ? a : b;
      const other = r === a ? b : a;
      r.route({ tokenIds: [k, 7, 8, 9], requestId: `q${k}` });
      const msgs = r.takeReplicaMessages();
      for (const m of msgs) other.applyReplicaMessage(m);
      // A redelivered decision (at-least-once transport) is the same request, not another arrival.
      const routed = msgs.filter((m) => m.type === 'routed');
      expect(routed).toHaveLength(1);
      expect(other.applyReplicaMessage(routed[0])).toEqual({ applied: true, repeat: true });
    }
    expect(a.stats().arrivalsPerSecond).toBeCloseTo(20, 6);
    expect(b.stats().arrivalsPerSecond).toBeCloseTo(20, 6);
    // Both replicas saw the same decisions, so they agree on the shares.
    expect(a.stats().workers.map((w) => w.routedShare)).toEqual(b.stats().workers.map((w) => w.routedShare));
    // A bad message counts nothing.
    a.applyReplicaMessage({ type: 'routed', router_id: 'rx', worker_id: 'a' });
    expect(a.stats().arrivalsPerSecond).toBeCloseTo(20, 6);
  });
});
