import { dirname } from 'node:path';
import {
  clearedEvent,
  hashFromWire,
  hashToWire,
  isWireHash,
  KvEventBuilder,
  kvClearedEventSchema,
  kvEventSchema,
  kvRemovedEventSchema,
  kvStoredEventSchema,
  loadMetricsSchema,
  removedEvent,
  RouterInvalidArgumentError,
  sequenceHashes,
  blockHashes,
  storedEventForBlocks,
  storedEventFromTokens,
  validateKvEvent,
  validateLoadMetrics,
} from '@dynamo-ts/router';

type Validate = ((data: unknown) => boolean) & { errors?: unknown };
interface AjvLike {
  compile(schema: object): Validate;
}

/** ajv 6 (draft-07), as installed at the root. */
function ajvDraft07(): AjvLike {
  const Ajv = require('ajv') as new (o?: object) => AjvLike;
  return new Ajv({ allErrors: true });
}

/** ajv 8 with draft 2019-09, from the sdk's dependencies (skipped when not installed there). */
function ajv2019(): AjvLike | undefined {
  try {
    const sdk = dirname(require.resolve('../../sdk/package.json'));
    const mod = require(require.resolve('ajv/dist/2019', { paths: [sdk] })) as { default: new (o?: object) => AjvLike };
    return new mod.default({ allErrors: true, strict: true });
  } catch {
    return undefined;
  }
}

const H = (n: number): string => n.toString(16).padStart(16, '0');

const valid: unknown[] = [
  { type: 'stored', worker_id: 'w', event_id: 0, parent_hash: null, blocks: [] },
  {
    type: 'stored',
    worker_id: 'w',
    event_id: 3,
    parent_hash: 'ab',
    blocks: [{ block_hash: H(1), tokens_hash: 'FFFFFFFFFFFFFFFF' }],
  },
  { type: 'removed', worker_id: 'w', event_id: 1, block_hashes: [H(1), '0'] },
  { type: 'removed', worker_id: 'w', event_id: 1, block_hashes: [] },
  { type: 'cleared', worker_id: 'w', event_id: Number.MAX_SAFE_INTEGER },
];
const invalid: unknown[] = [
  null,
  [],
  'stored',
  {},
  { type: 'stored', worker_id: 'w', event_id: 0, blocks: [] }, // parent_hash missing
  { type: 'stored', worker_id: 'w', event_id: 0, parent_hash: null }, // blocks missing
  { type: 'stored', worker_id: '', event_id: 0, parent_hash: null, blocks: [] },
  { type: 'stored', worker_id: 'w', event_id: -1, parent_hash: null, blocks: [] },
  { type: 'stored', worker_id: 'w', event_id: 1.5, parent_hash: null, blocks: [] },
  { type: 'stored', worker_id: 'w', event_id: '1', parent_hash: null, blocks: [] },
  { type: 'stored', worker_id: 'w', event_id: 0, parent_hash: 12, blocks: [] },
  { type: 'stored', worker_id: 'w', event_id: 0, parent_hash: null, blocks: [{ block_hash: H(1) }] },
  {
    type: 'stored',
    worker_id: 'w',
    event_id: 0,
    parent_hash: null,
    blocks: [{ block_hash: 'xyz', tokens_hash: H(1) }],
  },
  { type: 'stored', worker_id: 'w', event_id: 0, parent_hash: null, blocks: [{ block_hash: '', tokens_hash: H(1) }] },
  {
    type: 'stored',
    worker_id: 'w',
    event_id: 0,
    parent_hash: null,
    blocks: [{ block_hash: '0'.repeat(17), tokens_hash: H(1) }],
  },
  { type: 'stored', worker_id: 'w', event_id: 0, parent_hash: null, blocks: [null] },
  { type: 'removed', worker_id: 'w', event_id: 0, block_hashes: [1] },
  { type: 'removed', worker_id: 'w', event_id: 0 },
  { type: 'cleared', worker_id: 7, event_id: 0 },
  { type: 'evicted', worker_id: 'w', event_id: 0 },
];

describe('KV event schemas and validator', () => {
  const ajvs: [string, AjvLike | undefined][] = [
    ['draft-07 (ajv 6)', ajvDraft07()],
    ['2019-09 (ajv 8)', ajv2019()],
  ];

  it.each(ajvs)('compile with %s, and agree with validateKvEvent', (_name, ajv) => {
    if (ajv === undefined) return; // ajv 8 not installed next to the sdk
    const any = ajv.compile(kvEventSchema);
    for (const v of valid) {
      expect([v, any(v)]).toEqual([v, true]);
      expect(validateKvEvent(v).ok).toBe(true);
    }
    for (const v of invalid) {
      expect([v, any(v)]).toEqual([v, false]);
      expect(validateKvEvent(v).ok).toBe(false);
    }
    const stored = ajv.compile(kvStoredEventSchema);
    const removed = ajv.compile(kvRemovedEventSchema);
    const cleared = ajv.compile(kvClearedEventSchema);
    expect(valid.map((v) => [stored(v), removed(v), cleared(v)])).toEqual([
      [true, false, false],
      [true, false, false],
      [false, true, false],
      [false, true, false],
      [false, false, true],
    ]);
  });

  it.each(ajvs)('load metrics schema compiles with %s and agrees with validateLoadMetrics', (_n, ajv) => {
    if (ajv === undefined) return;
    const v = ajv.compile(loadMetricsSchema);
    const good = [
      { worker_id: 'w' },
      { worker_id: 'w', active_blocks: 3, total_blocks: 10, active_prefill_tokens: 0, waiting: 2 },
    ];
    const bad = [{}, { worker_id: '' }, { worker_id: 'w', waiting: -1 }, { worker_id: 'w', active_blocks: '3' }, null];
    for (const g of good) expect([v(g), validateLoadMetrics(g).ok]).toEqual([true, true]);
    for (const b of bad) expect([v(b), validateLoadMetrics(b).ok]).toEqual([false, false]);
  });

  it('explains what is wrong', () => {
    const r = validateKvEvent({
      type: 'stored',
      worker_id: 'w',
      event_id: 0,
      parent_hash: null,
      blocks: [{ block_hash: 'zz' }],
    });
    expect(r).toEqual({
      ok: false,
      errors: ['blocks[0].block_hash must be a hex hash', 'blocks[0].tokens_hash must be a hex hash'],
    });
    expect(validateLoadMetrics({ worker_id: 'w', waiting: -1 })).toEqual({
      ok: false,
      errors: ['waiting must be a non-negative number'],
    });
  });
});

describe('wire hashes', () => {
  it('are 16 lowercase hex digits, and round-trip', () => {
    for (const h of [0n, 1n, 0xdeadbeefn, (1n << 64n) - 1n, 0x0123456789abcdefn]) {
      const w = hashToWire(h);
      expect(w).toMatch(/^[0-9a-f]{16}$/);
      expect(hashFromWire(w)).toBe(h);
    }
    expect(hashFromWire('ABCDEF')).toBe(0xabcdefn);
    expect(hashFromWire('0')).toBe(0n);
  });

  it.each([[''], ['0x12'], ['g'], ['1'.repeat(17)], [' 1'], ['１']])('rejects %p', (s) => {
    expect(isWireHash(s)).toBe(false);
    expect(() => hashFromWire(s)).toThrow(RouterInvalidArgumentError);
  });

  it('rejects bigints outside u64', () => {
    expect(() => hashToWire(-1n)).toThrow(RouterInvalidArgumentError);
    expect(() => hashToWire(1n << 64n)).toThrow(RouterInvalidArgumentError);
  });
});

describe('event builders', () => {
  const tokens = Array.from({ length: 10 }, (_, i) => i + 100);
  const seq = sequenceHashes(tokens, 2).map(hashToWire);
  const local = blockHashes(tokens, 2).map(hashToWire);

  it('storedEventFromTokens: a new sequence, block_hash = sequence hash, tokens_hash = local hash', () => {
    const ev = storedEventFromTokens('w1', 4, tokens.slice(0, 7), 2);
    expect(ev).toEqual({
      type: 'stored',
      worker_id: 'w1',
      event_id: 4,
      parent_hash: null,
      blocks: [0, 1, 2].map((i) => ({ block_hash: seq[i], tokens_hash: local[i] })),
    });
    expect(validateKvEvent(ev).ok).toBe(true);
  });

  it('storedEventFromTokens: continuing a parent chains from it (bigint or wire parent)', () => {
    const cont = storedEventFromTokens('w1', 5, tokens.slice(4), 2, hashFromWire(seq[1]!));
    expect(cont.parent_hash).toBe(seq[1]);
    expect(cont.blocks.map((b) => b.block_hash)).toEqual(seq.slice(2));
    expect(storedEventFromTokens('w1', 5, tokens.slice(4), 2, seq[1]!)).toEqual(cont);
  });

  it('storedEventForBlocks: a range of a whole prompt, with its parent', () => {
    const ev = storedEventForBlocks('w1', 0, tokens, 2, { fromBlock: 2, toBlock: 4 });
    expect(ev.parent_hash).toBe(seq[1]);
    expect(ev.blocks).toEqual([2, 3].map((i) => ({ block_hash: seq[i], tokens_hash: local[i] })));
    expect(storedEventForBlocks('w1', 0, tokens, 2).blocks).toHaveLength(5);
    expect(storedEventForBlocks('w1', 0, tokens, 2, { fromBlock: 5 }).blocks).toEqual([]);
    expect(() => storedEventForBlocks('w1', 0, tokens, 2, { fromBlock: 6 })).toThrow(RouterInvalidArgumentError);
    expect(() => storedEventForBlocks('w1', 0, tokens, 2, { fromBlock: 3, toBlock: 2 })).toThrow(/block range/);
  });

  it('removedEvent and clearedEvent', () => {
    expect(removedEvent('w', 2, [1n, 'ff'])).toEqual({
      type: 'removed',
      worker_id: 'w',
      event_id: 2,
      block_hashes: [H(1), 'ff'],
    });
    expect(clearedEvent('w', 3)).toEqual({ type: 'cleared', worker_id: 'w', event_id: 3 });
    expect(() => removedEvent('w', 2, ['nothex'])).toThrow(RouterInvalidArgumentError);
    expect(() => clearedEvent('', 3)).toThrow(/workerId/);
    expect(() => clearedEvent('w', -1)).toThrow(/eventId/);
  });

  it('KvEventBuilder stamps consecutive event ids', () => {
    const kv = new KvEventBuilder('w9', 2, 10);
    expect(kv.nextEventId).toBe(10);
    const a = kv.stored(tokens, 0, 2);
    const b = kv.stored(tokens, 2);
    const c = kv.removed([seq[4]!]);
    const d = kv.cleared();
    expect([a, b, c, d].map((e) => e.event_id)).toEqual([10, 11, 12, 13]);
    expect(b.parent_hash).toBe(seq[1]);
    expect(b.blocks).toHaveLength(3);
    expect(kv.nextEventId).toBe(14);
    expect(() => new KvEventBuilder('w', 0)).toThrow(RouterInvalidArgumentError);
  });

  it('events survive JSON', () => {
    const ev = storedEventFromTokens('w1', 1, tokens, 2);
    expect(JSON.parse(JSON.stringify(ev))).toEqual(ev);
  });
});
