/**
 * KV-event ingest cost: decoding + translating vLLM batches (re-hashing each block's tokens)
 * against the baseline of decoding the same bytes with @msgpack/msgpack alone, in the same run.
 * `npx tsx packages/vllm/scripts/ingest.ts [batches]`
 */
import { decode } from '@msgpack/msgpack';
import { decodeBatch } from '../src/ingest/wire';
import { EngineKvTranslator } from '../src/ingest/translate';
import { batchBytes, CacheModel } from '../test/support/engine-double';

const N = Number(process.argv[2] ?? 20000);
const BS = 16;
const cache = new CacheModel(BS);
const payloads: Buffer[] = [];
for (let i = 0; i < N; i++) {
  // Each batch: one BlockStored of 4 new blocks continuing a shared 2-block prefix.
  const tokens = Array.from({ length: 6 * BS }, (_, k) => (k < 2 * BS ? k : i * 997 + k));
  const e = cache.store(tokens, 'array');
  if (e) payloads.push(batchBytes('array', [e]));
}
const time = (f: () => void): number => {
  const t0 = process.hrtime.bigint();
  f();
  return Number(process.hrtime.bigint() - t0) / 1e6;
};
let sink = 0;
const base = time(() => {
  for (const p of payloads) sink += (decode(p, { useBigInt64: true }) as unknown[]).length;
});
const tr = new EngineKvTranslator({
  workerId: 'w',
  blockSize: BS,
  maxBlocks: 1 << 22,
  emit: () => sink++,
  warn: () => undefined,
});
const ours = time(() => {
  for (const p of payloads) for (const e of decodeBatch(p).events) tr.apply(0, e);
});
process.stdout.write(
  `batches=${payloads.length} msgpack-only=${base.toFixed(1)}ms ingest=${ours.toFixed(1)}ms ` +
    `ratio=${(ours / base).toFixed(2)}x ingest-rate=${Math.round(payloads.length / (ours / 1000))} batches/s (sink ${sink})\n`,
);
