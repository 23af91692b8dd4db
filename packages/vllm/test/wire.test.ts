import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeBatch, engineHash, readSeq, seqFrame } from '../src/ingest/wire';
import { BIG_HASH, BIG_HASH_2, fixtureCases } from './support/fixture-cases';

const fixtures = JSON.parse(readFileSync(join(__dirname, 'fixtures', 'kv-event-batches.json'), 'utf8')) as Record<
  string,
  { hex: string }
>;
const bytes = (name: string): Buffer => Buffer.from(fixtures[name]!.hex, 'hex');

describe('KVEventBatch bytes', () => {
  it('the doubles still write exactly the committed fixture bytes', () => {
    for (const c of fixtureCases()) expect(c.bytes.toString('hex')).toBe(fixtures[c.name]!.hex);
  });

  it.each(['array_stored_removed_cleared', 'map_stored_removed_cleared'])(
    '%s decodes with 64-bit hashes exact',
    (name) => {
      const b = decodeBatch(bytes(name));
      expect(b.skipped).toEqual([]);
      expect(b.ts).toBe(1767225600.25);
      expect(b.events).toEqual([
        {
          type: 'BlockStored',
          blockHashes: [engineHash(BIG_HASH), engineHash(BIG_HASH_2)],
          parentBlockHash: null,
          tokenIds: [1, 2, 3, 4, 5, 6, 7, 8],
          blockSize: 4,
          loraId: null,
          medium: 'GPU',
        },
        { type: 'BlockRemoved', blockHashes: [engineHash(BIG_HASH_2)], medium: 'GPU' },
        { type: 'AllBlocksCleared' },
      ]);
      // Beyond 2^53: a double would round it; the key keeps every bit.
      expect(engineHash(BIG_HASH)).toBe('i9e3779b97f4a7c15');
      expect(engineHash(BIG_HASH_2)).toBe('i200000000000ff');
    },
  );

  it('reads the DP rank and bytes hashes', () => {
    const b = decodeBatch(bytes('array_dp_rank'));
    expect(b.dpRank).toBe(1);
    expect(b.events[0]).toMatchObject({ parentBlockHash: 'i5', blockHashes: ['i7'] });
    const h = decodeBatch(bytes('array_bytes_hashes'));
    expect(h.events[0]).toMatchObject({ blockHashes: ['b' + 'ab'.repeat(32)], medium: null });
  });

  it('refuses garbage, truncated and huge payloads; skips one bad event and keeps the rest', () => {
    const full = bytes('array_stored_removed_cleared');
    expect(() => decodeBatch(full.subarray(0, full.length - 5))).toThrow();
    expect(() => decodeBatch(Buffer.from('not msgpack at all'))).toThrow();
    expect(() => decodeBatch(full, { maxPayloadBytes: 10, maxEvents: 10, maxBlocksPerEvent: 10 })).toThrow(/too large/);
    expect(() => decodeBatch(full, { maxPayloadBytes: 1 << 20, maxEvents: 2, maxBlocksPerEvent: 10 })).toThrow(
      /too large/,
    );
    const mixed = decodeBatch(
      Buffer.from(
        // [1.0, [["Bogus"], ["AllBlocksCleared"]]]
        '92cb3ff00000000000009291a5426f67757391b0416c6c426c6f636b73436c6561726564',
        'hex',
      ),
    );
    expect(mixed.events).toEqual([{ type: 'AllBlocksCleared' }]);
    expect(mixed.skipped).toHaveLength(1);
  });

  it('sequence frames are 8 bytes big-endian', () => {
    expect(readSeq(seqFrame(258))).toBe(258n);
    expect(readSeq(Buffer.from('ffffffffffffffff', 'hex'))).toBe(-1n);
    expect(() => readSeq(Buffer.alloc(4))).toThrow(/8 bytes/);
  });
});
