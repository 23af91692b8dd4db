import { KvRouter, sequenceHashes } from '@dynamo-ts/router';
import { KvEventIngest } from '../src/ingest/ingest';
import { EngineDouble, KvPublisherDouble, batchBytes, storedEvent } from './support/engine-double';
import { memoryLogger, until } from './support/util';
import { seqFrame } from '../src/ingest/wire';
import { freePort } from '@dynamo-ts/runtime/testing';

const BS = 4;
const prompt = (base: number, blocks: number): number[] =>
  Array.from({ length: blocks * BS }, (_, i) => base * 1000 + i);

interface Fleet {
  router: KvRouter;
  doubles: EngineDouble[];
  ingests: KvEventIngest[];
  log: ReturnType<typeof memoryLogger>;
}

async function fleet(encodings: ('array' | 'map')[], o: { maxBlocks?: number; replay?: boolean } = {}): Promise<Fleet> {
  const router = new KvRouter({ blockSize: BS, strategy: 'kv', temperature: 0 });
  const log = memoryLogger();
  const doubles: EngineDouble[] = [];
  const ingests: KvEventIngest[] = [];
  for (const [i, enc] of encodings.entries()) {
    const d = await new EngineDouble({ blockSize: BS, encoding: enc }).start();
    const id = `engine-${i}`;
    router.addWorker(id);
    const ing = new KvEventIngest({
      workerId: id,
      endpoint: d.kv.endpoint,
      replayEndpoint: o.replay === false ? undefined : d.kv.replayEndpoint,
      blockSize: BS,
      maxBlocks: o.maxBlocks,
      emit: (e) => {
        const r = router.applyEvent(e);
        if (r.status !== 'applied') log.warn('router refused', { ...r });
      },
      logger: log,
    });
    ing.start();
    doubles.push(d);
    ingests.push(ing);
  }
  // Slow joiner: publish a first store until each subscriber sees it (replay fills what it missed).
  for (const [i, d] of doubles.entries()) {
    // Empty batches until the subscriber is connected (the replay fills in the ones it missed).
    const empty = batchBytes(encodings[i]!, []);
    await until(() => (void d.kv.publish(empty), ingests[i]!.stats().batches > 0), 8000, 'first batch');
    await d.store(prompt(900 + i, 1));
    await until(() => ingests[i]!.translator.size === d.cache.blocks.size, 8000, 'caught up');
  }
  return { router, doubles, ingests, log };
}

async function close(f: Fleet): Promise<void> {
  for (const i of f.ingests) i.close();
  for (const d of f.doubles) await d.close();
}

/** The router's index holds exactly the double's blocks for `worker`. */
function expectIndexEquals(f: Fleet, worker: string, d: EngineDouble): void {
  const idx = f.router.indexer!;
  const want = d.cache.routerHashes();
  expect(idx.cachedBlocks(worker)).toBe(want.length);
  for (const h of want) expect(idx.findMatches([h]).get(worker)).toBe(1);
}

const route = (f: Fleet, tokens: number[], id: string) => {
  const d = f.router.route({ tokenIds: tokens, requestId: id });
  f.router.onFinished(id);
  return d;
};

describe('KV event ingest against engine doubles', () => {
  it('shared-prefix requests follow the engine that announced the prefix; BlockRemoved and AllBlocksCleared move them', async () => {
    const f = await fleet(['array', 'map']);
    try {
      const a = prompt(1, 4);
      const b = prompt(2, 4);
      await f.doubles[0]!.store(a);
      await f.doubles[1]!.store(b);
      await until(
        () => f.router.indexer!.cachedBlocks('engine-0') === 5 && f.router.indexer!.cachedBlocks('engine-1') === 5,
      );
      expect(route(f, [...a, 7, 7, 7, 7], 'r1')).toMatchObject({ worker_id: 'engine-0', overlap_blocks: 4 });
      expect(route(f, [...b, 7, 7, 7, 7], 'r2')).toMatchObject({ worker_id: 'engine-1', overlap_blocks: 4 });

      // engine-0 evicts a's blocks and engine-1 now holds a: requests move to engine-1.
      const ahashes = [...f.doubles[0]!.cache.blocks.entries()]
        .filter(([, r]) => sequenceHashes(a, BS).includes(r))
        .map(([e]) => e);
      await f.doubles[0]!.remove(ahashes);
      await f.doubles[1]!.store(a);
      await until(() => f.router.indexer!.cachedBlocks('engine-0') === 1);
      expect(route(f, [...a, 7, 7, 7, 7], 'r3')).toMatchObject({ worker_id: 'engine-1', overlap_blocks: 4 });

      // engine-1 clears everything; engine-0 stores b: b's requests follow it there.
      await f.doubles[1]!.clear();
      await f.doubles[0]!.store(b);
      await until(
        () => f.router.indexer!.cachedBlocks('engine-1') === 0 && f.router.indexer!.cachedBlocks('engine-0') === 5,
      );
      expect(route(f, [...b, 7, 7, 7, 7], 'r4')).toMatchObject({ worker_id: 'engine-0', overlap_blocks: 4 });
      expectIndexEquals(f, 'engine-0', f.doubles[0]!);
      expectIndexEquals(f, 'engine-1', f.doubles[1]!);
    } finally {
      await close(f);
    }
  });

  it('a sequence gap is replayed and the index ends equal to the engine', async () => {
    const f = await fleet(['array']);
    const d = f.doubles[0]!;
    try {
      // Lost messages: stored and removed batches the subscriber never sees.
      await d.store(prompt(3, 3), { drop: true });
      await d.store(prompt(4, 2), { drop: true });
      const first = [...d.cache.blocks.keys()][0]!;
      await d.remove([first], { drop: true });
      await d.store(prompt(5, 2));
      await until(() => f.ingests[0]!.stats().replays >= 1 && f.ingests[0]!.stats().batches >= 5, 8000, 'replay');
      expect(f.ingests[0]!.stats()).toMatchObject({ gaps: 1, resyncs: 0 });
      expectIndexEquals(f, 'engine-0', d);
      expect(d.cache.routerHashes()).toEqual(f.ingests[0]!.translator.routerHashes().sort());
    } finally {
      await close(f);
    }
  });

  it('a gap without a replay socket drops the blocks (never keeps stale ones)', async () => {
    const f = await fleet(['map'], { replay: false });
    const d = f.doubles[0]!;
    try {
      const p = prompt(6, 2);
      await d.store(p);
      await until(() => f.router.indexer!.cachedBlocks('engine-0') === 3);
      const resyncs = f.ingests[0]!.stats().resyncs;
      await d.remove([...d.cache.blocks.keys()], { drop: true });
      await d.store(prompt(7, 2));
      await until(() => f.ingests[0]!.stats().resyncs > resyncs && f.router.indexer!.cachedBlocks('engine-0') === 2);
      expect(f.router.indexer!.cachedBlocks('engine-0')).toBe(2);
      expect(route(f, p, 'r')).toMatchObject({ overlap_blocks: 0 });
    } finally {
      await close(f);
    }
  });

  it('an engine restarted from sequence 0 is re-synced', async () => {
    const f = await fleet(['array']);
    const d = f.doubles[0]!;
    try {
      await d.store(prompt(8, 3));
      await d.store(prompt(9, 3));
      await until(() => f.router.indexer!.cachedBlocks('engine-0') === 7);
      // Restart: empty cache, sequence from 0; the first batch after it is lost (then replayed).
      d.kv.restart();
      d.cache.blocks.clear();
      await d.store(prompt(10, 2), { drop: true });
      await d.store(prompt(11, 1));
      await until(() => f.ingests[0]!.stats().restarts === 1 && f.router.indexer!.cachedBlocks('engine-0') === 3);
      expectIndexEquals(f, 'engine-0', d);
    } finally {
      await close(f);
    }
  });

  it('bad engine input is logged and skipped: no crash, no wedged subscriber, bounded index', async () => {
    const f = await fleet(['array'], { maxBlocks: 64 });
    const d = f.doubles[0]!;
    const ing = f.ingests[0]!;
    try {
      const bad0 = ing.stats().badMessages;
      await d.kv.raw(['kv-events', 'garbage']); // 2 frames
      await d.kv.raw(['kv-events', Buffer.alloc(3), Buffer.alloc(1)]); // bad sequence frame
      // A truncated batch, under the next sequence number.
      const full = batchBytes('array', [storedEvent('array', [1n], null, [1, 2, 3, 4], BS)]);
      await d.kv.publish(full.subarray(0, full.length - 3));
      // An event whose parent the engine never announced; a hash beyond 2^53.
      await d.kv.publish(
        batchBytes('array', [storedEvent('array', [0xfedcba9876543210n], 0x1234567890abcdefn, [5, 6, 7, 8], BS)]),
      );
      // A huge batch: 70k events (over the 65,536 limit).
      const many = Array.from({ length: 70000 }, () => ['AllBlocksCleared'] as string[]);
      await d.kv.publish(batchBytes('array', many));
      await until(() => ing.stats().badMessages >= bad0 + 4, 8000, 'bad messages counted');
      expect(f.log.lines.some((l) => /unknown parent/.test(l.message))).toBe(true);
      // Still working, and bounded: 100 blocks stored, at most 64 remembered.
      await d.store(prompt(12, 100));
      await until(() => ing.translator.size > 0 && ing.stats().batches >= 3);
      await until(() => f.router.indexer!.cachedBlocks('engine-0') <= 64 && ing.translator.size <= 64, 8000, 'bounded');
      const p = prompt(13, 2);
      await d.store(p);
      await until(() => route(f, p, 'x').overlap_blocks === 2, 8000, 'still applying');
      await d.kv.raw(['kv-events', seqFrame(d.kv.seq), Buffer.from([0xc1])]); // never-used msgpack byte
    } finally {
      await close(f);
    }
  });

  it('subscribes to each DP rank on port + rank', async () => {
    const base = await freePort();
    const r0 = await new KvPublisherDouble().start(`tcp://127.0.0.1:${base}`);
    const r1 = await new KvPublisherDouble().start(`tcp://127.0.0.1:${base + 1}`);
    const router = new KvRouter({ blockSize: BS });
    router.addWorker('e');
    const ing = new KvEventIngest({
      workerId: 'e',
      endpoint: r0.endpoint,
      dpSize: 2,
      blockSize: BS,
      emit: (e) => router.applyEvent(e),
      logger: memoryLogger(),
    });
    ing.start();
    try {
      const p = prompt(14, 1);
      const pub = async (k: KvPublisherDouble, rank: number) =>
        k.publish(batchBytes('array', [storedEvent('array', [BigInt(rank + 1)], null, p, BS)], rank));
      await until(() => (void pub(r0, 0), void pub(r1, 1), ing.stats().batches >= 4), 8000, 'both ranks');
      expect(router.indexer!.cachedBlocks('e')).toBe(1);
      // Rank 0 clears: rank 1 still holds the block.
      await r0.publish(batchBytes('array', [['AllBlocksCleared']], 0));
      await new Promise((r) => setTimeout(r, 100));
      expect(router.indexer!.cachedBlocks('e')).toBe(1);
    } finally {
      ing.close();
      r0.close();
      r1.close();
    }
  });
});
