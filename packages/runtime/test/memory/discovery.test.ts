/** Memory-only discovery behaviour: store outages and recovery. */
import { MemoryDiscovery, MemoryKvStore } from '../../src/discovery/memory';
import type { DiscoveryEvent } from '../../src/discovery/discovery';
import { Reader, delay, eventually, rejection } from '@dynamo-ts/runtime/compliance';

describe('MemoryDiscovery outages', () => {
  let store: MemoryKvStore;
  const clients: MemoryDiscovery[] = [];
  const connect = async (leaseTtlMs = 300): Promise<MemoryDiscovery> => {
    const c = await MemoryDiscovery.connect(store, { leaseTtlMs });
    clients.push(c);
    return c;
  };

  beforeEach(() => {
    store = new MemoryKvStore();
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await store.close();
  });

  test('while the store is down calls fail with UNAVAILABLE and status is disconnected', async () => {
    const a = await connect();
    await a.put('k', 'v');
    store.setAvailable(false);
    expect(a.status).toBe('disconnected');
    expect((await rejection(a.get('k'))).code).toBe('UNAVAILABLE');
    expect((await rejection(a.put('k2', 'v'))).code).toBe('UNAVAILABLE');
    expect((await rejection(a.getPrefix(''))).code).toBe('UNAVAILABLE');
    expect((await rejection(a.delete('k'))).code).toBe('UNAVAILABLE');
    store.setAvailable(true);
    expect(a.status).toBe('connected');
    expect(await a.get('k')).toBe('v');
    expect(await a.get('k2')).toBeUndefined();
  });

  test('a short outage keeps the lease: no events, same keys', async () => {
    const a = await connect(1000);
    const b = await connect(1000);
    await a.put('svc/a', '1');
    const r = new Reader<DiscoveryEvent>(b.watchPrefix('svc/'));
    await r.take(2);
    store.setAvailable(false);
    await delay(100);
    store.setAvailable(true);
    await a.put('svc/sentinel', 'x');
    expect(await r.take(1)).toEqual([{ type: 'put', key: 'svc/sentinel', value: 'x' }]);
    expect(store.leaseCount).toBe(2);
  });

  test('after an outage longer than the TTL the client re-grants the same lease and re-puts its keys', async () => {
    const a = await connect(300);
    const b = await connect(300);
    const leaseId = a.leaseId;
    await a.put('svc/a', '1');
    await a.put('svc/config', 'c', { lease: false });
    const r = new Reader<DiscoveryEvent>(b.watchPrefix('svc/'));
    expect(await r.take(3)).toEqual([
      { type: 'put', key: 'svc/a', value: '1' },
      { type: 'put', key: 'svc/config', value: 'c' },
      { type: 'synced' },
    ]);
    store.setAvailable(false);
    await eventually('both leases to expire', () => store.leaseCount === 0, 3000);
    // The watch holds back what happened until the store is reachable.
    expect(r.items).toHaveLength(3);
    store.setAvailable(true);
    expect(a.status).toBe('connected');
    expect(a.leaseId).toBe(leaseId);
    expect(await r.take(2)).toEqual([
      { type: 'delete', key: 'svc/a' },
      { type: 'put', key: 'svc/a', value: '1' },
    ]);
    expect(await b.get('svc/a')).toBe('1');
    expect(await b.get('svc/config')).toBe('c');
    // The re-granted lease is kept alive again.
    await delay(700);
    expect(await b.get('svc/a')).toBe('1');
    await a.close();
    expect(await r.take(1)).toEqual([{ type: 'delete', key: 'svc/a' }]);
  });

  test('a key deleted by its owner is not re-put after recovery', async () => {
    const a = await connect(200);
    await a.put('gone', '1');
    await a.put('kept', '2');
    await a.delete('gone');
    store.setAvailable(false);
    await eventually('the lease to expire', () => store.leaseCount === 0, 3000);
    store.setAvailable(true);
    expect(await a.getPrefix('')).toEqual([{ key: 'kept', value: '2' }]);
  });

  test('a watch opened during an outage starts when the store returns', async () => {
    const a = await connect();
    await a.put('p/x', '1');
    store.setAvailable(false);
    const r = new Reader<DiscoveryEvent>(a.watchPrefix('p/'));
    await delay(50);
    expect(r.items).toEqual([]);
    store.setAvailable(true);
    expect(await r.take(2)).toEqual([{ type: 'put', key: 'p/x', value: '1' }, { type: 'synced' }]);
  });

  test('a client closed during an outage cannot revoke: its lease expires after the TTL', async () => {
    const a = await connect(200);
    const b = await connect(5000);
    await a.put('svc/a', '1');
    store.setAvailable(false);
    await a.close();
    expect(a.status).toBe('closed');
    store.setAvailable(true);
    expect(await b.get('svc/a')).toBe('1');
    await eventually('the lease to expire', async () => (await b.get('svc/a')) === undefined, 3000);
  });

  test('a lease lost while the store is up is re-granted on the next put', async () => {
    const a = await connect(5000);
    await a.put('k1', '1');
    store.revokeLease(a.leaseId);
    expect(await a.get('k1')).toBeUndefined();
    await a.put('k2', '2');
    expect(await a.getPrefix('')).toEqual([
      { key: 'k1', value: '1' },
      { key: 'k2', value: '2' },
    ]);
  });

  test('connect validates the TTL and fails while the store is down', async () => {
    expect((await rejection(MemoryDiscovery.connect(store, { leaseTtlMs: 0 }))).code).toBe('INVALID_ARGUMENT');
    store.setAvailable(false);
    expect((await rejection(MemoryDiscovery.connect(store))).code).toBe('UNAVAILABLE');
  });

  test('crash stops the client without revoking; closing the store ends every client', async () => {
    const a = await connect(200);
    const b = await connect(5000);
    await a.put('k', 'v');
    await a.crash();
    expect(a.status).toBe('closed');
    expect((await rejection(a.get('k'))).code).toBe('CLOSED');
    expect(await b.get('k')).toBe('v');
    const r = new Reader<DiscoveryEvent>(b.watchPrefix(''));
    await r.take(2);
    await store.close();
    await r.end();
    expect(b.status).toBe('closed');
    expect((await rejection(b.get('k'))).code).toBe('CLOSED');
  });
});
