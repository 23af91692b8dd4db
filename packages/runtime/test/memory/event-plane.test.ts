/** Memory-only event-plane behaviour: subject validation and slow consumers. */
import { MemoryEventPlane } from '../../src/events/memory';
import type { EventMessage } from '../../src/events/event-plane';
import { MemoryBus } from '../../src/transport/memory';
import { Reader, rejection } from '@dynamo-ts/runtime/compliance';

describe('MemoryEventPlane', () => {
  let bus: MemoryBus;
  beforeEach(() => {
    bus = new MemoryBus();
  });
  afterEach(async () => {
    await bus.close();
  });

  test('subjects are validated', async () => {
    const p = new MemoryEventPlane(bus);
    expect((await rejection(p.publish('a.*', 1))).code).toBe('INVALID_ARGUMENT');
    expect((await rejection(p.publish('a..b', 1))).code).toBe('INVALID_ARGUMENT');
    expect((await rejection(p.publish('', 1))).code).toBe('INVALID_ARGUMENT');
    expect((await rejection(p.publish('a', { n: 1n }))).code).toBe('INVALID_ARGUMENT');
    expect(() => p.subscribe('a.>.b')).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => p.subscribe('a b')).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });

  test('a slow consumer loses events beyond maxPending, keeping the oldest', async () => {
    const p = new MemoryEventPlane(bus, { maxPending: 10 });
    const sub = p.subscribe<number>('s');
    for (let i = 0; i < 25; i++) await p.publish('s', i);
    const r = new Reader<EventMessage<number>>(sub);
    expect((await r.take(10)).map((m) => m.data)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    await p.publish('s', 99);
    expect((await r.take(1)).map((m) => m.data)).toEqual([99]);
  });

  test('a closed plane refuses publish and subscribe with CLOSED', async () => {
    const p = new MemoryEventPlane(bus);
    await p.close();
    await p.close();
    expect((await rejection(p.publish('s', 1))).code).toBe('CLOSED');
    expect(() => p.subscribe('s')).toThrow(expect.objectContaining({ code: 'CLOSED' }));
  });

  test('an already-aborted signal gives an ended subscription', async () => {
    const p = new MemoryEventPlane(bus);
    const ac = new AbortController();
    ac.abort();
    const r = new Reader(p.subscribe('s', { signal: ac.signal }));
    await p.publish('s', 1);
    await r.end();
    expect(r.items).toEqual([]);
  });
});
