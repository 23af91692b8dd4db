/**
 * The three request/reply implementations the rpc bench compares, each as a server (echo and
 * stream endpoints) and a client: bare nats.js over one wildcard inbox (the floor), the dynamo-ts
 * NATS request plane, and Moleculer with its NATS transporter (optional).
 */
import { Readable } from 'node:stream';
import { connect, createInbox, type NatsConnection } from '@nats-io/transport-node';
import type * as RuntimeModule from '@dynamo-ts/runtime';
import type * as NatsModule from '@dynamo-ts/runtime/nats';
import type * as MoleculerModule from 'moleculer';

export type Impl = 'floor' | 'dynamo' | 'dynamo-base' | 'moleculer';

/** The subjects of an implementation's endpoints (each its own: all are served at once). */
const ECHO = (impl: Impl): string => `bench.rpc.${impl}.echo`;
const STREAM = (impl: Impl): string => `bench.rpc.${impl}.stream`;

/** One served implementation. */
export interface BenchServer {
  close(): Promise<void>;
}

/** One calling implementation. */
export interface BenchClient {
  /** Sends `payload`, resolves with the echoed value. */
  unary(payload: unknown): Promise<unknown>;
  /** Asks for a stream of `n` items; resolves with the number received. */
  stream(n: number): Promise<number>;
  readonly streams: boolean;
  close(): Promise<void>;
}

/** The item a stream endpoint yields (a token of a generation, ~40 bytes of JSON). */
function item(i: number): unknown {
  return { token_ids: [i], text: 'tok', index: i };
}

/** Loads `@dynamo-ts/runtime`, or the build at `path` (e.g. a build of another commit). */
export async function loadRuntime(path: string | undefined): Promise<typeof RuntimeModule & typeof NatsModule> {
  // This tree has the NATS backends in the `nats` subpath; builds before the split in the root entry.
  if (!path) return { ...require('@dynamo-ts/runtime'), ...require('@dynamo-ts/runtime/nats') } as never;
  const root = require(path) as Record<string, unknown>;
  if (typeof root.NatsRequestPlane === 'function') return root as never;
  return { ...root, ...require(require('node:path').join(require('node:path').dirname(path), 'nats')) } as never;
}

/** Moleculer, or why it cannot be loaded. */
export function loadMoleculer(): typeof MoleculerModule | string {
  try {
    return require('moleculer') as typeof MoleculerModule;
  } catch (e) {
    return `moleculer is not installed (${(e as Error).message.split('\n')[0]}); npm install -w packages/bench`;
  }
}

const utf8 = new TextDecoder();

async function floorServer(url: string): Promise<BenchServer> {
  const nc = await connect({ servers: url });
  nc.subscribe(ECHO('floor'), {
    callback: (_err, msg) => {
      if (msg.reply) nc.publish(msg.reply, JSON.stringify(JSON.parse(utf8.decode(msg.data))));
    },
  });
  await nc.flush();
  return { close: () => nc.close() };
}

async function floorClient(url: string): Promise<BenchClient> {
  const nc: NatsConnection = await connect({ servers: url });
  const prefix = createInbox();
  const skip = prefix.length + 1;
  const waiting = new Map<string, (data: Uint8Array) => void>();
  let seq = 0;
  nc.subscribe(`${prefix}.*`, {
    callback: (_err, msg) => {
      const token = msg.subject.slice(skip);
      const resolve = waiting.get(token);
      if (resolve) {
        waiting.delete(token);
        resolve(msg.data);
      }
    },
  });
  await nc.flush();
  return {
    streams: false,
    unary: (payload) =>
      new Promise((resolve) => {
        const token = (++seq).toString(36);
        waiting.set(token, (data) => resolve(JSON.parse(utf8.decode(data))));
        nc.publish(ECHO('floor'), JSON.stringify(payload), { reply: `${prefix}.${token}` });
      }),
    stream: () => Promise.reject(new Error('the floor has no streams')),
    close: () => nc.close(),
  };
}

async function dynamoServer(impl: Impl, url: string, runtimePath: string | undefined): Promise<BenchServer> {
  const rt = await loadRuntime(runtimePath);
  const nc = await rt.connectNats({ servers: url });
  const plane = new rt.NatsRequestPlane(nc);
  await plane.serve(ECHO(impl), async function* (request: unknown) {
    yield request;
  });
  await plane.serve(STREAM(impl), async function* (request: unknown) {
    const n = (request as { n: number }).n;
    for (let i = 0; i < n; i++) yield item(i);
  });
  return {
    close: async () => {
      await plane.close();
      await nc.close();
    },
  };
}

async function dynamoClient(impl: Impl, url: string, runtimePath: string | undefined): Promise<BenchClient> {
  const rt = await loadRuntime(runtimePath);
  const nc = await rt.connectNats({ servers: url });
  const plane = new rt.NatsRequestPlane(nc);
  return {
    streams: true,
    unary: async (payload) => {
      let last: unknown;
      for await (const x of plane.request(ECHO(impl), payload)) last = x;
      return last;
    },
    stream: async (n) => {
      let count = 0;
      for await (const _ of plane.request(STREAM(impl), { n })) count++;
      return count;
    },
    close: async () => {
      await plane.close();
      await nc.close();
    },
  };
}

function broker(m: typeof MoleculerModule, url: string, role: string): MoleculerModule.ServiceBroker {
  return new m.ServiceBroker({
    nodeID: `bench-${role}-${process.pid}`,
    transporter: { type: 'NATS', options: { url } },
    serializer: 'JSON',
    logger: false,
  });
}

async function moleculerServer(url: string): Promise<BenchServer> {
  const m = loadMoleculer();
  if (typeof m === 'string') throw new Error(m);
  const b = broker(m, url, 'server');
  b.createService({
    name: 'bench',
    actions: {
      echo: (ctx) => ctx.params,
      stream: (ctx) => {
        const n = (ctx.params as { n: number }).n;
        return Readable.from(
          (function* () {
            for (let i = 0; i < n; i++) yield item(i);
          })(),
        );
      },
    },
  });
  await b.start();
  return { close: () => b.stop() };
}

async function moleculerClient(url: string): Promise<BenchClient> {
  const m = loadMoleculer();
  if (typeof m === 'string') throw new Error(m);
  const b = broker(m, url, 'client');
  await b.start();
  await b.waitForServices(['bench'], 10_000);
  return {
    streams: true,
    unary: (payload) => b.call('bench.echo', payload as object),
    stream: async (n) => {
      const s = (await b.call('bench.stream', { n })) as AsyncIterable<unknown>;
      let count = 0;
      for await (const _ of s) count++;
      return count;
    },
    close: () => b.stop(),
  };
}

export function startServer(impl: Impl, url: string, runtimePath: string | undefined): Promise<BenchServer> {
  switch (impl) {
    case 'floor':
      return floorServer(url);
    case 'dynamo':
    case 'dynamo-base':
      return dynamoServer(impl, url, runtimePath);
    case 'moleculer':
      return moleculerServer(url);
  }
}

export function startClient(impl: Impl, url: string, runtimePath: string | undefined): Promise<BenchClient> {
  switch (impl) {
    case 'floor':
      return floorClient(url);
    case 'dynamo':
    case 'dynamo-base':
      return dynamoClient(impl, url, runtimePath);
    case 'moleculer':
      return moleculerClient(url);
  }
}
