import { Type } from '@sinclair/typebox';
import { createLogger } from '@dynamo-ts/runtime';
import {
  defineService,
  embeddedPlatform,
  serveGraph,
  streamEndpoint,
  unaryEndpoint,
  type GraphHandle,
} from '@dynamo-ts/sdk';

const Sum = Type.Object({ a: Type.Integer(), b: Type.Integer() });
const Total = Type.Object({ total: Type.Integer() });
const CalcApi = {
  add: unaryEndpoint(Sum, Total),
  count: streamEndpoint(Type.Object({ to: Type.Integer({ minimum: 0, maximum: 100 }) }), Type.Integer()),
};

const Calc = defineService({
  name: 'Calc',
  api: CalcApi,
  create: () => ({
    endpoints: {
      add: (req) => ({ total: req.a + req.b }),
      async *count(req) {
        for (let i = 1; i <= req.to; i++) yield i;
      },
    },
  }),
});

/** Calls Calc through typed clients (what another service's ctx.client gives). */
const Caller = defineService({
  name: 'Caller',
  dependencies: [Calc],
  async create(ctx) {
    const add = await ctx.client(Calc, 'add');
    const count = await ctx.client(Calc, 'count');
    return { metadata: { add, count } as unknown as Record<string, unknown> };
  },
});

describe('declared endpoints (api)', () => {
  let graph: GraphHandle;
  beforeAll(async () => {
    graph = await serveGraph(Caller, {
      platform: embeddedPlatform(),
      settings: { namespace: `typed-${process.pid}`, port: 0, workerName: 'n', leaseTtlMs: 10000 },
      logger: createLogger({ silent: true }),
    });
  });
  afterAll(() => graph.close({ timeoutMs: 1000 }));

  const clients = (): {
    add: { call(r: unknown): Promise<unknown> };
    count: { generate(r: unknown): AsyncIterable<number> };
  } => graph.get('Caller')[0]!.instance.metadata as never;

  it('a unary endpoint answers one value to call()', async () => {
    await expect(clients().add.call({ a: 2, b: 3 })).resolves.toEqual({ total: 5 });
  });

  it('a streaming endpoint streams', async () => {
    const got: number[] = [];
    for await (const n of clients().count.generate({ to: 3 })) got.push(n);
    expect(got).toEqual([1, 2, 3]);
  });

  it('requests are validated against the declared schema, naming the field', async () => {
    await expect(clients().add.call({ a: 'two', b: 3 })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: expect.stringMatching(/a/),
    });
    await expect(
      (async () => {
        for await (const n of clients().count.generate({ to: 1000 })) void n;
      })(),
    ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('a service that declares an endpoint and serves no handler for it fails to start, naming it', async () => {
    const Broken = defineService({
      name: 'Broken',
      api: CalcApi,
      create: () => ({ endpoints: { add: () => ({ total: 0 }) } }) as never,
    });
    await expect(
      serveGraph(Broken, {
        platform: embeddedPlatform(),
        settings: { namespace: `typed-b-${process.pid}`, port: 0, workerName: 'n', leaseTtlMs: 10000 },
        logger: createLogger({ silent: true }),
      }),
    ).rejects.toThrow(/Broken declares endpoint count/);
  });
});
