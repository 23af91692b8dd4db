/**
 * NatsEventPlane against a real nats-server (started once for the file): the event-plane
 * compliance suite, then what only a real server shows (payload limit, server restart).
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { NatsEventPlane } from '../../src/events/nats';
import type { EventMessage } from '../../src/events/event-plane';
import { connectNats } from '../../src/nats-connection';
import { startNatsServer, type NatsServer } from '../../src/testing';
import { describeWithBinaries } from '../../../../test/support/integration';
import { describeEventPlaneCompliance, Reader, eventually, rejection, uid } from '@dynamo-ts/runtime/compliance';

describeWithBinaries(['nats-server'], 'NatsEventPlane', () => {
  jest.setTimeout(30_000);
  let server: NatsServer;

  beforeAll(async () => {
    server = await startNatsServer({ jetstream: false });
  });
  afterAll(async () => {
    await server?.dispose();
  });

  /** Planes, each on its own connection; close() closes the planes, then the connections. */
  function opened(): { open(): Promise<{ plane: NatsEventPlane; nc: NatsConnection }>; close(): Promise<void> } {
    const all: Array<{ plane: NatsEventPlane; nc: NatsConnection }> = [];
    return {
      async open() {
        const nc = await connectNats({ servers: server.url, reconnectTimeWaitMs: 100, reconnectJitterMs: 50 });
        const x = { plane: new NatsEventPlane(nc), nc };
        all.push(x);
        return x;
      },
      async close() {
        for (const { plane } of all) await plane.close();
        for (const { nc } of all.splice(0)) if (!nc.isClosed()) await nc.close();
      },
    };
  }

  describeEventPlaneCompliance('compliance', async () => {
    const planes = opened();
    return { connect: async () => (await planes.open()).plane, teardown: () => planes.close() };
  });

  describe('with a real server', () => {
    const planes = opened();
    afterEach(() => planes.close());

    test('an event larger than max_payload fails with PAYLOAD_TOO_LARGE naming the limit', async () => {
      const { plane, nc } = await planes.open();
      const limit = nc.info!.max_payload;
      const err = await rejection(plane.publish(`t.${uid()}`, 'x'.repeat(limit + 1)));
      expect(err.code).toBe('PAYLOAD_TOO_LARGE');
      expect(err.message).toContain(String(limit));
    });

    test('invalid subjects fail with INVALID_ARGUMENT; a closed plane with CLOSED', async () => {
      const { plane } = await planes.open();
      expect((await rejection(plane.publish('a.*', 1))).code).toBe('INVALID_ARGUMENT');
      expect(() => plane.subscribe('a..b')).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
      await plane.close();
      expect((await rejection(plane.publish('a.b', 1))).code).toBe('CLOSED');
    });

    test('subscriptions survive a nats-server restart', async () => {
      const pub = await planes.open();
      const sub = await planes.open();
      const subject = `restart.${uid()}`;
      const r = new Reader<EventMessage>(sub.plane.subscribe(subject));
      await sub.plane.flush();
      await pub.plane.publish(subject, 'before');
      expect((await r.take(1)).map((m) => m.data)).toEqual(['before']);
      await server.stop();
      await server.start();
      // Both connections reconnect and nats.js re-subscribes; publish until the subscriber hears.
      await eventually(
        'an event after the restart',
        async () => {
          try {
            await pub.plane.publish(subject, 'after');
            await pub.plane.flush();
          } catch {
            return false;
          }
          return r.items.some((m) => m.data === 'after');
        },
        15_000,
      );
      expect(r.error).toBeUndefined();
    });

    test('closing the connection ends the subscriptions', async () => {
      const { plane, nc } = await planes.open();
      const r = new Reader<EventMessage>(plane.subscribe(`closing.${uid()}`));
      await plane.flush();
      await nc.close();
      await r.end();
      expect((await rejection(plane.publish('a.b', 1))).code).toBe('CLOSED');
    });
  });
});
