import { mkdtempSync, readFileSync, readdirSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createLogger } from '@dynamo-ts/runtime';
import type { KvStateRef } from '@dynamo-ts/llm';
import type { FromChild } from '../src/child-protocol';
import { EngineProcess } from '../src/engine-process';
import { KvStateRejected, TransferDir, modelFingerprint } from '../src/kv-handover';
import { tinyModel } from '../src/tiny-model';

const logger = createLogger({ silent: true });
const root = mkdtempSync(path.join(tmpdir(), 'kv-handover-'));
const MODEL = path.join(root, 'tiny.gguf');
const OTHER = path.join(root, 'other.gguf');
writeFileSync(MODEL, tinyModel({ seed: 3 }));
writeFileSync(OTHER, tinyModel({ seed: 4 }));
type Done = Extract<FromChild, { type: 'done' }>;

/** A prefill engine (saves states) and a decode engine (loads them), on the same model. */
describe('KV state handover between two engine children', () => {
  const prefillEngine = new EngineProcess({ modelPath: MODEL, slots: 1, contextSize: 512, logger });
  const decodeEngine = new EngineProcess({ modelPath: MODEL, slots: 1, contextSize: 512, logger });
  let n = 0;
  const newDir = async (o: { max?: number; ttl?: number } = {}): Promise<TransferDir> => {
    const d = new TransferDir(
      path.join(root, `dir-${++n}`),
      { kv_transfer_max_bytes: o.max ?? 1 << 30, kv_transfer_ttl_ms: o.ttl ?? 60_000 },
      logger,
    );
    await d.open();
    return d;
  };
  let model: string;
  let prompt: number[];

  beforeAll(async () => {
    await Promise.all([prefillEngine.start(), decodeEngine.start()]);
    model = await modelFingerprint(MODEL);
    prompt = await prefillEngine.tokenize('the model and the cache and the router '.repeat(8));
  }, 30000);
  afterAll(async () => {
    await Promise.all([prefillEngine.close(), decodeEngine.close()]);
  });

  /** Prefills `tokens` and publishes the saved state in `dir`. */
  async function prefill(dir: TransferDir, tokens: number[]): Promise<KvStateRef> {
    const saveTo = dir.tempPath();
    const done = await prefillEngine.request<Done>(
      (id) => ({ type: 'prefill', id, slot: 0, tokens, saveTo }),
      (m, ok, fail) => (m.type === 'done' ? ok(m) : m.type === 'failed' ? fail(new Error(m.error)) : undefined),
    ).done;
    expect(done.saved).toBeGreaterThan(0);
    const ref = await dir.publish(saveTo, tokens.length, model);
    expect(ref).toBeDefined();
    return ref!;
  }

  /** Greedy decode of `tokens` in a fresh slot, loading `loadState` first when given. */
  async function decode(tokens: number[], loadState?: string): Promise<{ out: number[]; done: Done }> {
    // Empty the slot so nothing is reused from the previous request.
    await decodeEngine.request<Done>(
      (id) => ({ type: 'prefill', id, slot: 0, tokens: [] }),
      (m, ok) => (m.type === 'done' ? ok(m) : undefined),
    ).done;
    const out: number[] = [];
    const done = await decodeEngine.request<Done>(
      (id) => ({
        type: 'generate',
        id,
        slot: 0,
        tokens,
        maxNewTokens: 12,
        temperature: 0,
        ...(loadState ? { loadState } : {}),
      }),
      (m, ok) => (m.type === 'token' ? void out.push(m.token) : m.type === 'done' ? ok(m) : undefined),
    ).done;
    return { out, done };
  }

  it('the decode engine loads the state, evaluates one token, and answers as if it had prefilled', async () => {
    const dir = await newDir();
    const ref = await prefill(dir, prompt);
    expect(readdirSync(dir.dir)).toEqual([ref.file]);
    const file = await dir.check(ref, model, prompt);
    const loaded = await decode(prompt, file);
    expect(loaded.done.loaded).toBe(prompt.length);
    expect(loaded.done.loadError).toBeUndefined();
    expect(loaded.done.evaluated).toBe(1);
    const local = await decode(prompt);
    expect(local.done.evaluated).toBe(prompt.length);
    expect(loaded.out).toEqual(local.out);
    await dir.discard(ref);
    expect(readdirSync(dir.dir)).toEqual([]);
  });

  it('a prefix state loads for a longer request: only the rest is evaluated', async () => {
    const dir = await newDir();
    const ref = await prefill(dir, prompt.slice(0, 40));
    const file = await dir.check(ref, model, prompt);
    const r = await decode(prompt, file);
    expect(r.done.loaded).toBe(40);
    expect(r.done.evaluated).toBe(prompt.length - 40);
  });

  it('rejects a missing, corrupt, truncated, foreign or mismatched state before loading', async () => {
    const dir = await newDir();
    const ref = await prefill(dir, prompt);
    const file = path.join(dir.dir, ref.file);
    const good = readFileSync(file);
    const rejects = (r: KvStateRef, why: RegExp, context = prompt, m = model) =>
      expect(dir.check(r, m, context)).rejects.toThrow(why);

    await rejects({ ...ref, file: '../../etc/passwd' }, /not a state file name/);
    await rejects({ ...ref, file: 'nope.kv' }, /missing/);
    await rejects(ref, /another model/, prompt, await modelFingerprint(OTHER));
    await rejects(
      ref,
      /token 3 differs/,
      prompt.map((t, i) => (i === 3 ? t + 1 : t)),
    );
    await rejects(ref, /more tokens than the request/, prompt.slice(0, 10));
    await rejects({ ...ref, bytes: ref.bytes + 1 }, /size/);
    const flipped = Buffer.from(good);
    flipped[flipped.length - 10] ^= 0xff;
    writeFileSync(file, flipped);
    await rejects(ref, /checksum/);
    writeFileSync(file, good.subarray(0, 40));
    await rejects({ ...ref, bytes: 40 }, /not a llama.cpp sequence state/);
    writeFileSync(file, good);
    const link = `${ref.file}.link.kv`;
    symlinkSync(file, path.join(dir.dir, link));
    await rejects({ ...ref, file: link }, /not a regular file/);
    await expect(dir.check(ref, model, prompt)).resolves.toBe(file);
    expect(await dir.check(ref, model, prompt)).toBe(file);
    await expect(dir.check({ ...ref, file: 'x/../y.kv' }, model, prompt)).rejects.toBeInstanceOf(KvStateRejected);
  });

  it('the engine child survives a state file llama.cpp refuses, and evaluates the prompt', async () => {
    const bad = path.join(root, 'garbage.kv');
    writeFileSync(bad, Buffer.from('not a sequence state at all'));
    const r = await decode(prompt, bad);
    expect(r.done.loaded).toBe(0);
    expect(r.done.loadError).toBeDefined();
    expect(r.done.evaluated).toBe(prompt.length);
    expect(r.out).toEqual((await decode(prompt)).out);
  });

  it('sweeps files past the TTL and the oldest beyond the byte cap; refuses a state over the cap', async () => {
    const dir = await newDir({ max: 3000, ttl: 60_000 });
    const put = (name: string, bytes: number, ageS: number): void => {
      const f = path.join(dir.dir, name);
      writeFileSync(f, Buffer.alloc(bytes));
      const t = Date.now() / 1000 - ageS;
      utimesSync(f, t, t);
    };
    put('old.kv', 10, 120);
    put('a.kv', 1000, 30);
    put('b.kv', 1000, 20);
    put('c.kv.tmp', 1000, 10);
    put('keep-me.txt', 10, 500);
    await dir.sweep();
    expect(readdirSync(dir.dir).sort()).toEqual(['a.kv', 'b.kv', 'c.kv.tmp', 'keep-me.txt']);
    await dir.sweep(1000);
    expect(readdirSync(dir.dir).sort()).toEqual(['b.kv', 'c.kv.tmp', 'keep-me.txt']);
    // A real state is ~tens of KB: over this cap it is not handed over (and deleted).
    const saveTo = dir.tempPath();
    await prefillEngine.request<Done>(
      (id) => ({ type: 'prefill', id, slot: 0, tokens: prompt, saveTo }),
      (m, ok) => (m.type === 'done' ? ok(m) : undefined),
    ).done;
    expect(await dir.publish(saveTo, prompt.length, model)).toBeUndefined();
    expect(readdirSync(dir.dir)).not.toContain(path.basename(saveTo));
    dir.close();
  });
});

describe('opening the transfer directory at start', () => {
  it('a directory that cannot be created closes the engine and names the flag', async () => {
    const base = mkdtempSync(path.join(tmpdir(), 'kv-open-'));
    const file = path.join(base, 'a-file');
    writeFileSync(file, 'not a directory');
    const d = new TransferDir(
      path.join(file, 'kv'),
      { kv_transfer_max_bytes: 1 << 20, kv_transfer_ttl_ms: 1000 },
      createLogger({ level: 'error' }),
    );
    let closed = 0;
    await expect(d.openOrFail('LlamaWorker', { close: async () => void closed++ })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: expect.stringMatching(/^--LlamaWorker\.kv_transfer_dir=.*a-file\/kv: cannot create it/),
    });
    expect(closed).toBe(1);
    d.close();
  });
});
