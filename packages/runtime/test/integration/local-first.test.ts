/**
 * LocalFirstRequestPlane over a real nats-server: the request-plane compliance suite both ways
 * (caller and endpoint in one process: the in-process path; in two: NATS), then that an
 * in-process call sends nothing through NATS and that draining moves callers to NATS.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { LocalFirstRequestPlane } from '../../src/transport/local-first';
import { MemoryBus } from '../../src/transport/memory';
import { NatsRequestPlane } from '../../src/transport/nats';
import { NoRespondersError } from '../../src/errors';
import { connectNats } from '../../src/nats-connection';
import { startNatsServer, type NatsServer } from '../../src/testing';
import { describeWithBinaries } from '../../../../test/support/integration';
import { describeRequestPlaneCompliance, collect, rejection, uid } from '@dynamo-ts/runtime/compliance';

/** Planes on their own connections; `bus` given: one process, else each plane its own. */
class Planes {
  private readonly all: Array<{ plane: LocalFirstRequestPlane; nc: NatsConnection; bus: MemoryBus }> = [];
  constructor(private readonly url: () => string) {}
  async open(bus = new MemoryBus()): Promise<{ plane: LocalFirstRequestPlane; nc: NatsConnection }> {
    const nc = await connectNats({ servers: this.url(), reconnectTimeWaitMs: 100, reconnectJitterMs: 50 });
    const x = { plane: new LocalFirstRequestPlane(new NatsRequestPlane(nc), bus), nc, bus };
    this.all.push(x);
    return x;
  }
  async close(): Promise<void> {
    const all = this.all.splice(0);
    for (const { plane } of all) await plane.close();
    for (const { nc } of all) if (!nc.isClosed()) await nc.close();
    for (const { bus } of all) await bus.close();
  }
}

describeWithBinaries(['nats-server'], 'LocalFirstRequestPlane', () => {
  jest.setTimeout(30_000);
  let server: NatsServer;

  beforeAll(async () => {
    server = await startNatsServer({ jetstream: false });
  });
  afterAll(async () => {
    await server?.dispose();
  });

  describeRequestPlaneCompliance('compliance, caller and endpoint in one process', async () => {
    const planes = new Planes(() => server.url);
    const bus = new MemoryBus();
    return { connect: async () => (await planes.open(bus)).plane, teardown: () => planes.close() };
  });

  describeRequestPlaneCompliance('compliance, caller and endpoint in two processes', async () => {
    const planes = new Planes(() => server.url);
    return { connect: async () => (await planes.open()).plane, teardown: () => planes.close() };
  });

  it('keeps a call to an endpoint of this process off NATS, and sends others through it', async () => {
    const planes = new Planes(() => server.url);
    try {
      const bus = new MemoryBus();
      const a = await planes.open(bus);
      const b = await planes.open(bus);
      const far = await planes.open();
      const subject = `lf.${uid()}.echo`;
      await a.plane.serve(subject, async function* (req) {
        yield { got: req };
        yield { done: true };
      });
      expect(b.plane.isLocal(subject)).toBe(true);
      expect(far.plane.isLocal(subject)).toBe(false);
      const before = [a.nc.stats().outMsgs, a.nc.stats().inMsgs, b.nc.stats().outMsgs, b.nc.stats().inMsgs];
      expect(await collect(b.plane.request(subject, { x: 1 }))).toEqual([{ got: { x: 1 } }, { done: true }]);
      expect([a.nc.stats().outMsgs, a.nc.stats().inMsgs, b.nc.stats().outMsgs, b.nc.stats().inMsgs]).toEqual(before);
      // Another process's caller reaches the same endpoint through NATS.
      const farBefore = far.nc.stats().outMsgs;
      expect(await collect(far.plane.request(subject, { x: 2 }))).toEqual([{ got: { x: 2 } }, { done: true }]);
      expect(far.nc.stats().outMsgs).toBeGreaterThan(farBefore);
    } finally {
      await planes.close();
    }
  });

  it('stops both paths when the endpoint drains: a caller of this process then sees no responders', async () => {
    const planes = new Planes(() => server.url);
    try {
      const bus = new MemoryBus();
      const a = await planes.open(bus);
      const b = await planes.open(bus);
      const subject = `lf.${uid()}.slow`;
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      const served = await a.plane.serve(subject, async function* () {
        await gate;
        yield 'last';
      });
      const inflight = collect(b.plane.request(subject, {}));
      await new Promise((r) => setTimeout(r, 20));
      expect(served.inflight).toBe(1);
      const drained = served.drain({ timeoutMs: 5000 });
      await new Promise((r) => setTimeout(r, 20));
      expect(b.plane.isLocal(subject)).toBe(false);
      await expect(rejection(collect(b.plane.request(subject, {})))).resolves.toBeInstanceOf(NoRespondersError);
      release();
      expect(await inflight).toEqual(['last']);
      await drained;
      expect(served.inflight).toBe(0);
    } finally {
      await planes.close();
    }
  });
});
