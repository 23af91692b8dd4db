/**
 * Writes test/fixtures/kv-event-batches.json: the bytes of KVEventBatch messages as vLLM's
 * msgspec encoder lays them out (see support/msgspec.ts), in both encodings. Run with
 * `npx tsx packages/vllm/test/make-fixtures.ts`; fixtures.test.ts checks that the committed bytes
 * decode as described and that the doubles still produce exactly these bytes.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixtureCases } from './support/fixture-cases';

const out = Object.fromEntries(
  fixtureCases().map((c) => [c.name, { description: c.description, hex: c.bytes.toString('hex') }]),
);
writeFileSync(join(__dirname, 'fixtures', 'kv-event-batches.json'), JSON.stringify(out, null, 2) + '\n');
