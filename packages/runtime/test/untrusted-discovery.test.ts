import {
  DistributedRuntime,
  MemoryCluster,
  MemoryDiscovery,
  parseInstanceInfo,
  type LogFields,
  type Logger,
  type RequestContext,
} from '@dynamo-ts/runtime';
import { collect } from '../src/compliance/helpers';

/** A logger that keeps every line, to count what was reported. */
function captureLogger(lines: { level: string; message: string; fields: LogFields }[]): Logger {
  const make = (base: LogFields): Logger => ({
    error: (message, fields) => lines.push({ level: 'error', message, fields: { ...base, ...fields } }),
    warn: (message, fields) => lines.push({ level: 'warn', message, fields: { ...base, ...fields } }),
    info: (message, fields) => lines.push({ level: 'info', message, fields: { ...base, ...fields } }),
    debug: () => undefined,
    child: (fields) => make({ ...base, ...fields }),
    isLevelEnabled: (level) => level !== 'debug',
  });
  return make({});
}

async function* echo(req: unknown, ctx: RequestContext): AsyncGenerator<unknown> {
  yield { echo: req, request_id: ctx.requestId };
}

/** Values an adversary with write access to discovery could put at an instance key. */
function badValues(key: string, good: Record<string, unknown>): string[] {
  const id = key.split('/').pop()!;
  return [
    'null',
    '{}',
    '42',
    '"str"',
    '[]',
    'not json {',
    JSON.stringify({ ...good, subject: 'dynamo.>' }),
    JSON.stringify({ ...good, subject: undefined }),
    JSON.stringify({ ...good, subject: 'dynamo.other.W.gen.' + id }),
    JSON.stringify({ ...good, instanceId: 'ffff' }),
    JSON.stringify({ ...good, metadata: 'x' }),
    JSON.stringify({ ...good, pid: -1 }),
    JSON.stringify({ ...good, name: 'x'.repeat(10_000) }),
    JSON.stringify({ ...good, pad: 'x'.repeat(100_000) }),
  ];
}

describe('instance registrations from discovery are untrusted', () => {
  let cluster: MemoryCluster;
  beforeEach(() => {
    cluster = new MemoryCluster();
  });
  afterEach(async () => {
    await cluster.close();
  });

  async function proc(logger?: Logger): Promise<DistributedRuntime> {
    return new DistributedRuntime({
      discovery: await cluster.connectDiscovery({ leaseTtlMs: 60_000 }),
      requestPlane: cluster.requestPlane(),
      eventPlane: cluster.eventPlane(),
      openQueue: async (o) => cluster.workQueue(o),
      hostname: 'h',
      logger,
    });
  }

  it('parseInstanceInfo accepts a real registration and names what is wrong with a bad one', async () => {
    const rt = await proc();
    const served = await rt.namespace('ns').component('W').endpoint('gen').serve(echo, { name: 'w' });
    const key = `dynamo/ns/instances/W/gen/${rt.instanceId}`;
    const good = JSON.parse((await rt.discovery.get(key))!) as Record<string, unknown>;
    expect(parseInstanceInfo(key, JSON.stringify(good))).toEqual({ ok: true, info: served.info });
    const reasons = badValues(key, good).map((v) => parseInstanceInfo(key, v));
    for (const r of reasons) expect(r.ok).toBe(false);
    expect(reasons.map((r) => (r.ok ? '' : r.error))).toEqual([
      'value is null, not an object',
      'namespace undefined does not match the key',
      'value is number, not an object',
      'value is string, not an object',
      'value is object, not an object',
      'value is not JSON',
      expect.stringContaining('subject "dynamo.>" is not'),
      expect.stringContaining('subject undefined is not'),
      expect.stringContaining('is not the instance'),
      expect.stringContaining('instanceId "ffff" does not match'),
      'metadata must be an object',
      'pid must be a non-negative integer',
      expect.stringContaining('name must be a string'),
      expect.stringContaining('larger than'),
    ]);
    await rt.close();
  });

  it('skips bad puts at instance keys, keeps the watch and every good request working, logs rate-limited', async () => {
    const lines: { level: string; message: string; fields: LogFields }[] = [];
    const worker = await proc();
    await worker.namespace('ns').component('W').endpoint('gen').serve(echo, { name: 'real' });
    const goodKey = `dynamo/ns/instances/W/gen/${worker.instanceId}`;
    const good = JSON.parse((await worker.discovery.get(goodKey))!) as Record<string, unknown>;
    const attacker = await proc();
    // A bad key present before the client starts (a restart with a bad key present).
    await attacker.discovery.put('dynamo/ns/instances/W/gen/00000000000bad01', 'null', { lease: false });
    const caller = await proc(captureLogger(lines));
    const client = await caller.namespace('ns').component('W').endpoint('gen').client();
    expect(client.instances().map((i) => i.name)).toEqual(['real']);

    // Any sequence of bad puts and deletes, at forged keys and over a forged id.
    let tried = 0;
    for (let round = 0; round < 3; round++) {
      for (const [n, v] of badValues('dynamo/ns/instances/W/gen/00000000000bad02', {
        ...good,
        instanceId: '00000000000bad02',
        subject: 'dynamo.ns.W.gen.00000000000bad02',
      }).entries()) {
        const key = `dynamo/ns/instances/W/gen/00000000000bad${(n % 3) + 1}`;
        await attacker.discovery.put(key, v, { lease: false });
        tried++;
        if (n % 4 === 0) await attacker.discovery.delete(key);
      }
    }
    await new Promise((r) => setTimeout(r, 20));
    expect(client.instances().map((i) => i.name)).toEqual(['real']);
    for (let i = 0; i < 20; i++) {
      const out = await collect(client.generate({ i }));
      expect(out).toEqual([{ echo: { i }, request_id: expect.any(String) }]);
    }

    // The watch still follows real changes after all that: a second real worker joins and is used.
    const worker2 = await proc();
    await worker2.namespace('ns').component('W').endpoint('gen').serve(echo, { name: 'real2' });
    await client.waitForInstances({ min: 2, timeoutMs: 2000 });
    expect(
      client
        .instances()
        .map((i) => i.name)
        .sort(),
    ).toEqual(['real', 'real2']);

    const skipped = lines.filter((l) => l.message === 'invalid instance registration skipped');
    expect(skipped.length).toBeGreaterThan(0);
    expect(skipped.length).toBeLessThanOrEqual(5);
    expect(tried).toBe(42);
    console.log(`bad instance registrations tried: ${tried + 1}, log lines: ${skipped.length}`);
    client.close();
    await Promise.all([worker.close(), worker2.close(), attacker.close(), caller.close()]);
  });

  it('a bad value over a live instance removes it; a good one brings it back', async () => {
    const worker = await proc();
    await worker.namespace('ns').component('W').endpoint('gen').serve(echo, { name: 'real' });
    const key = `dynamo/ns/instances/W/gen/${worker.instanceId}`;
    const good = (await worker.discovery.get(key))!;
    const caller = await proc();
    const client = await caller.namespace('ns').component('W').endpoint('gen').client();
    const changes: string[] = [];
    client.onChange((c) => changes.push(`${c.type}:${c.instance.name}`));
    await worker.discovery.put(key, JSON.stringify({ ...JSON.parse(good), subject: 'dynamo.>' }));
    await new Promise((r) => setTimeout(r, 10));
    expect(client.instances()).toEqual([]);
    await worker.discovery.put(key, good);
    await client.waitForInstances({ min: 1, timeoutMs: 1000 });
    expect(changes).toEqual(['removed:real', 'added:real']);
    client.close();
    await Promise.all([worker.close(), caller.close()]);
  });

  it('live config: bad values are skipped (last good stays), a throwing listener does not end the watch', async () => {
    const lines: { level: string; message: string; fields: LogFields }[] = [];
    const rt = await proc(captureLogger(lines));
    const ns = rt.namespace('ns');
    const seen: unknown[] = [];
    let throws = true;
    const stop = ns.watchConfig<{ n: number }>(
      'knob',
      (v) => {
        seen.push(v);
        if (throws) {
          throws = false;
          throw new Error('listener bug');
        }
      },
      {
        parse: (v) => {
          if (typeof v !== 'object' || v === null || typeof (v as { n?: unknown }).n !== 'number') {
            throw new Error('n must be a number');
          }
          return v as { n: number };
        },
      },
    );
    const key = 'dynamo/ns/config/knob';
    await ns.putConfig('knob', { n: 1 });
    for (const bad of ['null', '{', '"x"', '{"n":"1"}', 'x'.repeat(2 * 1024 * 1024)]) await rt.discovery.put(key, bad);
    await rt.discovery.delete(key);
    await ns.putConfig('knob', { n: 2 });
    for (let i = 0; i < 50 && seen.length < 3; i++) await new Promise((r) => setTimeout(r, 5));
    expect(seen).toEqual([{ n: 1 }, undefined, { n: 2 }]);
    await rt.discovery.put(key, 'null');
    expect(await ns.getConfig('knob', { parse: (v) => v as object })).toBeNull();
    expect(
      await ns.getConfig('knob', {
        parse: () => {
          throw new Error('no');
        },
      }),
    ).toBeUndefined();
    await rt.discovery.put(key, '{');
    expect(await ns.getConfig('knob')).toBeUndefined();
    expect(lines.some((l) => l.message === 'invalid live config ignored')).toBe(true);
    expect(lines.some((l) => l.message === 'live config listener threw')).toBe(true);
    stop();
    await rt.close();
  });

  it('memory discovery rejects lease TTLs its timers cannot honour', async () => {
    await expect(MemoryDiscovery.connect(cluster.kv, { leaseTtlMs: 1e10 })).rejects.toThrow(/leaseTtlMs must be/);
    await expect(MemoryDiscovery.connect(cluster.kv, { leaseTtlMs: 1 })).rejects.toThrow(/leaseTtlMs must be/);
    await expect(MemoryDiscovery.connect(cluster.kv, { leaseTtlMs: NaN })).rejects.toThrow(/leaseTtlMs must be/);
  });
});
