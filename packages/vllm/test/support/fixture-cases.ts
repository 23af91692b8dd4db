import { batchBytes, clearedEvent, removedEvent, storedEvent } from './engine-double';
import { pack } from './msgspec';

/** A hash beyond 2^53 (rounded if decoded as a double) and one beyond 2^63. */
export const BIG_HASH = 0x9e3779b97f4a7c15n;
export const BIG_HASH_2 = 0x00200000000000ffn;

/** The fixture messages: name, what the bytes are, and the bytes. */
export function fixtureCases(): { name: string; description: string; bytes: Buffer }[] {
  return [
    {
      name: 'array_stored_removed_cleared',
      description:
        'KVEventBatch(ts=1767225600.25, events=[BlockStored([BIG_HASH, BIG_HASH_2], None, [1..8], 4, None, "GPU"), BlockRemoved([BIG_HASH_2], "GPU"), AllBlocksCleared()]) — msgspec array_like + tag',
      bytes: batchBytes('array', [
        storedEvent('array', [BIG_HASH, BIG_HASH_2], null, [1, 2, 3, 4, 5, 6, 7, 8], 4),
        removedEvent('array', [BIG_HASH_2]),
        clearedEvent('array'),
      ]),
    },
    {
      name: 'array_dp_rank',
      description: 'KVEventBatch(ts, [BlockStored([7], 5, [9,10,11,12], 4, None, "GPU")], data_parallel_rank=1)',
      bytes: batchBytes('array', [storedEvent('array', [7n], 5n, [9, 10, 11, 12], 4)], 1),
    },
    {
      name: 'map_stored_removed_cleared',
      description:
        'the same events as array_stored_removed_cleared, batch and events as maps keyed by field name, "type" tags',
      bytes: batchBytes('map', [
        storedEvent('map', [BIG_HASH, BIG_HASH_2], null, [1, 2, 3, 4, 5, 6, 7, 8], 4),
        removedEvent('map', [BIG_HASH_2]),
        clearedEvent('map'),
      ]),
    },
    {
      name: 'array_bytes_hashes',
      description: 'BlockStored with bytes block hashes (sha256 digests, as some vLLM versions send)',
      bytes: pack([1.5, [['BlockStored', [Buffer.alloc(32, 0xab)], null, [1, 2, 3, 4], 4, null, null]]]),
    },
  ];
}
