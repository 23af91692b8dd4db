import {
  Cancellation,
  CancelledError,
  DistributedRuntime,
  RetryPolicy,
  MemoryCluster,
  UnavailableError,
  type InstanceChange,
  type RequestContext,
} from '@dynamo-ts/runtime';
import { collect } from '@dynamo-ts/runtime/compliance';

/** A runtime ("process") on `cluster`. */
async function proc(cluster: MemoryCluster, leaseTtlMs = 1000): Promise<DistributedRuntime> {
  return new DistributedRuntime({
    discovery: await cluster.connectDiscovery({ leaseTtlMs }),
    requestPlane: cluster.requestPlane(),
    eventPlane: cluster.eventPlane(),
    openQueue: async (o) => cluster.workQueue(o),
    hostname: 'test-host',
  });
}

async function* echo(req: unknown, ctx: RequestContext): AsyncGenerator<unknown> {
  const { n, who } = req as { n: number; who: string };
  for (let i = 0; i < n; i++) yield { i, who, request_id: ctx.requestId };
}

describe('DistributedRuntime', () => {
  let cluster: MemoryCluster;
  beforeEach(() => {
    cluster = new MemoryCluster();
  });
  afterEach(async () => {
    await cluster.close();
  });

  it('registers a served endpoint in discovery under the documented key and subject', async () => {
    const rt = await proc(cluster);
    const served = await rt
      .namespace('ns1')
      .component('Worker')
      .endpoint('generate')
      .serve(echo, { name: 'w0', metadata: { model: 'm' } });
    const key = `dynamo/ns1/instances/Worker/generate/${rt.instanceId}`;
    const value = JSON.parse((await rt.discovery.get(key))!) as Record<string, unknown>;
    expect(value).toMatchObject({
      namespace: 'ns1',
      component: 'Worker',
      endpoint: 'generate',
      instanceId: rt.instanceId,
      name: 'w0',
      hostname: 'test-host',
      pid: process.pid,
      subject: `dynamo.ns1.Worker.generate.${rt.instanceId}`,
      metadata: { model: 'm' },
    });
    expect(served.info.subject).toBe(value.subject);
    await rt.close();
    expect(await (await proc(cluster)).discovery.get(key)).toBeUndefined();
  });

  it('rejects invalid names', () => {
    return proc(cluster).then(async (rt) => {
      expect(() => rt.namespace('bad ns')).toThrow(/namespace "bad ns" must match/);
      expect(() => rt.namespace('ok').component('a.b')).toThrow(/component/);
      await rt.close();
    });
  });

  it('clients follow instances joining and leaving, and call them round-robin', async () => {
    const a = await proc(cluster);
    const b = await proc(cluster);
    const caller = await proc(cluster);
    await a.namespace('ns').component('W').endpoint('gen').serve(echo, { name: 'a' });
    const client = await caller.namespace('ns').component('W').endpoint('gen').client();
    const changes: InstanceChange[] = [];
    client.onChange((c) => changes.push(c));
    expect(client.instances().map((i) => i.name)).toEqual(['a']);
    await b.namespace('ns').component('W').endpoint('gen').serve(echo, { name: 'b' });
    await client.waitForInstances({ min: 2, timeoutMs: 2000 });
    const whos = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const items = (await collect(client.generate({ n: 1, who: 'x' }))) as Array<{ i: number }>;
      expect(items).toHaveLength(1);
    }
    // direct calls reach exactly that instance
    const direct = (await collect(
      client.generate({ n: 2, who: 'd' }, { instanceId: b.instanceId, requestId: 'r-1' }),
    )) as Array<{
      request_id: string;
    }>;
    expect(direct.map((d) => d.request_id)).toEqual(['r-1', 'r-1']);
    await b.close();
    for (let i = 0; i < 50 && client.instances().length !== 1; i++) await new Promise((r) => setTimeout(r, 10));
    expect(client.instances().map((i) => i.name)).toEqual(['a']);
    expect(changes.map((c) => `${c.type}:${c.instance.name}`)).toEqual(['added:b', 'removed:b']);
    whos.add('x');
    await a.close();
    await caller.close();
  });

  it('fails a direct call to an unknown instance with NOT_FOUND', async () => {
    const caller = await proc(cluster);
    const client = await caller.namespace('ns').component('W').endpoint('gen').client();
    await expect(collect(client.generate({}, { instanceId: 'deadbeef' }))).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await caller.close();
  });

  it('fails over to another instance when one has stopped serving but is still registered', async () => {
    const a = await proc(cluster, 60000);
    const b = await proc(cluster, 60000);
    const caller = await proc(cluster);
    const ea = await a.namespace('ns').component('W').endpoint('gen').serve(echo, { name: 'a' });
    await b.namespace('ns').component('W').endpoint('gen').serve(echo, { name: 'b' });
    const client = await caller.namespace('ns').component('W').endpoint('gen').client();
    await client.waitForInstances({ min: 2, timeoutMs: 1000 });
    // a's process "dies": its subscription is gone but its key lives until the lease expires.
    await (a.discovery as unknown as { crash(): Promise<void> }).crash();
    await a.requestPlane.close();
    void ea;
    for (let i = 0; i < 6; i++) {
      const items = (await collect(client.generate({ n: 2, who: 'x' }))) as unknown[];
      expect(items).toHaveLength(2);
    }
    expect(client.instances().map((i) => i.name)).toEqual(['b']);
    await b.close();
    await caller.close();
  });

  it('markDown leaves an instance out until its probation ends or discovery reports it again', async () => {
    const a = await proc(cluster, 60000);
    const b = await proc(cluster, 60000);
    const caller = await proc(cluster);
    await a.namespace('ns').component('W').endpoint('gen').serve(echo, { name: 'a' });
    await b.namespace('ns').component('W').endpoint('gen').serve(echo, { name: 'b' });
    const client = await caller.namespace('ns').component('W').endpoint('gen').client();
    await client.waitForInstances({ min: 2, timeoutMs: 1000 });
    const changes: string[] = [];
    client.onChange((c) => changes.push(`${c.type}:${c.instance.name}`));
    client.markDown(a.instanceId, 50);
    expect(client.isDown(a.instanceId)).toBe(true);
    expect(client.instances().map((i) => i.name)).toEqual(['b']);
    // With every instance marked down, all are tried again rather than none.
    client.markDown(b.instanceId, 50);
    expect(
      client
        .instances()
        .map((i) => i.name)
        .sort(),
    ).toEqual(['a', 'b']);
    await new Promise((r) => setTimeout(r, 120));
    // Still registered: back on probation after 50 ms.
    expect(client.isDown(a.instanceId)).toBe(false);
    expect(changes).toEqual(['removed:a', 'removed:b', 'added:a', 'added:b']);
    changes.length = 0;

    // Re-registration (same key written again) clears a mark at once.
    client.markDown(a.instanceId, 60000);
    const key = `dynamo/ns/instances/W/gen/${a.instanceId}`;
    await a.discovery.put(key, (await a.discovery.get(key))!);
    for (let i = 0; i < 50 && client.isDown(a.instanceId); i++) await new Promise((r) => setTimeout(r, 5));
    expect(client.isDown(a.instanceId)).toBe(false);
    expect(changes).toEqual(['removed:a', 'added:a']);

    // A marked-down instance that then leaves discovery is not reported removed twice.
    client.markDown(a.instanceId, 60000);
    await a.close();
    await new Promise((r) => setTimeout(r, 20));
    expect(changes).toEqual(['removed:a', 'added:a', 'removed:a']);
    client.close();
    await b.close();
    await caller.close();
  });

  it('marks an instance down on no responders only, not on an UNAVAILABLE its handler returns', async () => {
    const a = await proc(cluster, 60000);
    const b = await proc(cluster, 60000);
    const caller = await proc(cluster);
    const busy = async function* (): AsyncGenerator<unknown> {
      yield* [];
      throw new UnavailableError('no backend of my own right now');
    };
    await a.namespace('ns').component('W').endpoint('gen').serve(busy, { name: 'a' });
    await b.namespace('ns').component('W').endpoint('gen').serve(busy, { name: 'b' });
    const client = await caller.namespace('ns').component('W').endpoint('gen').client();
    await client.waitForInstances({ min: 2, timeoutMs: 1000 });
    await expect(collect(client.generate({}, { maxAttempts: 2 }))).rejects.toThrow(/no backend of my own/);
    expect(client.isDown(a.instanceId) || client.isDown(b.instanceId)).toBe(false);
    await a.requestPlane.close();
    await collect(client.generate({}, { maxAttempts: 2 })).catch(() => undefined);
    await collect(client.generate({}, { maxAttempts: 2 })).catch(() => undefined);
    expect(client.isDown(a.instanceId)).toBe(true);
    expect(client.isDown(b.instanceId)).toBe(false);
    client.close();
    await b.close();
    await caller.close();
  });

  it('takes a RetryPolicy: its attempts bound the retries, and its pause ends when the caller cancels', async () => {
    const a = await proc(cluster, 60000);
    const caller = await proc(cluster);
    let hits = 0;
    const busy = async function* (): AsyncGenerator<unknown> {
      hits++;
      yield* [];
      throw new UnavailableError('busy');
    };
    await a.namespace('ns').component('W').endpoint('gen').serve(busy, { name: 'a' });
    const client = await caller.namespace('ns').component('W').endpoint('gen').client();
    await client.waitForInstances({ min: 1, timeoutMs: 1000 });
    await expect(
      collect(client.generate({}, { retry: new RetryPolicy({ attempts: 3, backoffMs: 1 }) })),
    ).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    expect(hits).toBe(3);
    // A pause of a minute before the second round: the cancelled caller does not wait it out.
    hits = 0;
    const parent = new Cancellation();
    const call = collect(client.generate({}, { parent, retry: new RetryPolicy({ attempts: 3, backoffMs: 60_000 }) }));
    setTimeout(() => parent.cancel(new CancelledError('caller gone')), 50);
    await expect(call).rejects.toMatchObject({ code: 'CANCELLED' });
    expect(hits).toBe(1);
    client.close();
    await Promise.all([a.close(), caller.close()]);
  });

  it('tries every instance once before any twice when their handlers answer UNAVAILABLE', async () => {
    const a = await proc(cluster, 60000);
    const b = await proc(cluster, 60000);
    const caller = await proc(cluster);
    const hits: string[] = [];
    const busy = (name: string) =>
      async function* (): AsyncGenerator<unknown> {
        hits.push(name);
        yield* [];
        throw new UnavailableError(`${name} is busy`);
      };
    await a.namespace('ns').component('W').endpoint('gen').serve(busy('a'), { name: 'a' });
    await b.namespace('ns').component('W').endpoint('gen').serve(busy('b'), { name: 'b' });
    const client = await caller.namespace('ns').component('W').endpoint('gen').client();
    await client.waitForInstances({ min: 2, timeoutMs: 1000 });
    // Random picks would repeat an instance half the time without the record of those tried.
    for (let i = 0; i < 10; i++) {
      hits.length = 0;
      await expect(
        collect(client.generate({}, { mode: 'random', maxAttempts: 4, retryBackoffMs: 1 })),
      ).rejects.toMatchObject({ code: 'UNAVAILABLE' });
      // Two rounds of two attempts: each round covers both instances.
      expect(hits).toHaveLength(4);
      expect([...hits.slice(0, 2)].sort()).toEqual(['a', 'b']);
      expect([...hits.slice(2)].sort()).toEqual(['a', 'b']);
    }
    client.close();
    await Promise.all([a.close(), b.close(), caller.close()]);
  });

  it('waits up to waitForInstanceMs for an instance to appear when none is registered', async () => {
    const caller = await proc(cluster);
    const client = await caller.namespace('ns').component('W').endpoint('gen').client();
    const later = proc(cluster).then(async (rt) => {
      await new Promise((r) => setTimeout(r, 50));
      await rt.namespace('ns').component('W').endpoint('gen').serve(echo, { name: 'late' });
      return rt;
    });
    const items = (await collect(client.generate({ n: 1, who: 'x' }, { waitForInstanceMs: 5000 }))) as unknown[];
    expect(items).toHaveLength(1);
    await (await later).close();
    await expect(collect(client.generate({ n: 1 }, { waitForInstanceMs: 30 }))).rejects.toThrow(/no live instance/);
    client.close();
    await caller.close();
  });

  it('reports UNAVAILABLE when no instance is live', async () => {
    const caller = await proc(cluster);
    const client = await caller.namespace('ns').component('W').endpoint('gen').client();
    await expect(collect(client.generate({}))).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    await expect(client.waitForInstances({ timeoutMs: 50 })).rejects.toMatchObject({ code: 'TIMEOUT' });
    await caller.close();
  });

  it('drain deregisters first, then lets in-flight streams finish', async () => {
    const rt = await proc(cluster);
    const caller = await proc(cluster);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const served = await rt
      .namespace('ns')
      .component('W')
      .endpoint('gen')
      .serve(async function* () {
        yield 1;
        await gate;
        yield 2;
      });
    const client = await caller.namespace('ns').component('W').endpoint('gen').client();
    const it = client.generate({})[Symbol.asyncIterator]();
    expect((await it.next()).value).toBe(1);
    const draining = served.drain({ timeoutMs: 5000 });
    for (let i = 0; i < 50 && client.instances().length > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(client.instances()).toHaveLength(0);
    release();
    expect((await it.next()).value).toBe(2);
    expect((await it.next()).done).toBe(true);
    await draining;
    await rt.close();
    await caller.close();
  });

  it('publishes and subscribes component events, and reads/watches live config', async () => {
    const rt = await proc(cluster);
    const comp = rt.namespace('ns').component('W');
    const sub = comp.subscribe<{ x: number }>('kv_events');
    await comp.publish('kv_events', { x: 1 });
    const it = sub[Symbol.asyncIterator]();
    const m = await it.next();
    expect(m.value).toEqual({ subject: 'dynamo.ns.events.W.kv_events', data: { x: 1 } });
    sub.unsubscribe();
    const ns = rt.namespace('ns');
    const seen: unknown[] = [];
    const stop = ns.watchConfig('disagg', (v) => seen.push(v));
    await ns.putConfig('disagg', { max_local_prefill_length: 5 });
    expect(await ns.getConfig('disagg')).toEqual({ max_local_prefill_length: 5 });
    for (let i = 0; i < 50 && seen.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(seen).toEqual([{ max_local_prefill_length: 5 }]);
    stop();
    await rt.close();
  });
});
