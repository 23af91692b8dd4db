import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import type { EngineHost, EngineRequest, KvStateRef } from '@dynamo-ts/llm';
import { createLogger } from '@dynamo-ts/runtime';
import type { EndpointContext } from '@dynamo-ts/sdk';
import { modelFingerprint } from '../src/kv-handover';
import { tinyModel } from '../src/tiny-model';
import { kvHandovers, startLlamaEngine, type LlamaEngine } from '../src/worker';

const root = mkdtempSync(path.join(tmpdir(), 'worker-handover-'));
const MODEL = path.join(root, 'tiny.gguf');
writeFileSync(MODEL, tinyModel({ seed: 5 }));
const KV_DIR = path.join(root, 'kv');

const lines: Record<string, unknown>[] = [];
const sink = new PassThrough();
sink.on('data', (d: Buffer) => {
  for (const l of d.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
});
const logger = createLogger({ stream: sink, level: 'warn' });

function context(): EndpointContext {
  const ac = new AbortController();
  return {
    signal: ac.signal,
    get cancelled() {
      return ac.signal.aborted;
    },
  } as unknown as EndpointContext;
}

async function fallbacks(): Promise<number> {
  const m = await kvHandovers.get();
  return m.values.filter((v) => v.labels.outcome === 'fallback').reduce((a, v) => a + v.value, 0);
}

/** The decode side of a llama.cpp worker given a bad handed-over state: it prefills locally. */
describe('a llama.cpp decode engine given a bad KV state', () => {
  let engine: LlamaEngine;
  let prompt: number[];
  let model: string;
  const host: EngineHost = {
    workerId: 'w1',
    workerName: 'handover-w1',
    blockSize: 16,
    totalBlocks: 1024,
    logger,
    publishKvEvent: () => undefined,
    publishLoad: () => undefined,
    loadChanged: () => undefined,
  };

  beforeAll(async () => {
    engine = await startLlamaEngine(
      host,
      {
        model: MODEL,
        model_name: '',
        slots: 1,
        context_size: 512,
        threads: 1,
        restart_delay_ms: 100,
        kv_transfer_dir: KV_DIR,
      },
      'LlamaWorker',
      { namespace: 'unused-with-a-dir' },
    );
    prompt = await engine.process.tokenize('a prompt the prefill worker did not really prefill '.repeat(4));
    model = await modelFingerprint(MODEL);
  }, 30000);
  afterAll(async () => {
    await engine?.close?.();
  });

  async function generate(prefilledKv?: KvStateRef): Promise<number[]> {
    const req: EngineRequest = {
      requestId: `r-${lines.length}-${Math.random()}`,
      promptTokenIds: prompt,
      generatedTokenIds: [],
      contextTokenIds: prompt,
      maxNewTokens: 6,
      temperature: 0,
      prefilledRemotely: prefilledKv !== undefined,
      ...(prefilledKv ? { prefilledKv } : {}),
    };
    const out: number[] = [];
    for await (const s of engine.generate(req, context())) out.push(...s.tokenIds);
    return out;
  }

  it('a corrupt file: warns with the request id, evaluates the prompt, answers the same, deletes the file', async () => {
    const greedy = await generate();
    const file = path.join(KV_DIR, 'bad.kv');
    writeFileSync(file, Buffer.alloc(100, 7));
    const ref: KvStateRef = { file: 'bad.kv', bytes: 100, tokens: 4, sha256: '0'.repeat(64), model };
    const before = await fallbacks();
    // Another prompt first so the slot holds nothing of this one.
    prompt = [...prompt].reverse();
    await generate();
    prompt = [...prompt].reverse();
    const again = engine.stats.evaluatedPromptTokens;
    expect(await generate(ref)).toEqual(greedy);
    expect(engine.stats.evaluatedPromptTokens - again).toBe(prompt.length);
    expect(await fallbacks()).toBe(before + 1);
    await new Promise((r) => setImmediate(r));
    const warn = lines.find((l) => l.message === 'handed-over KV state not loaded; prefilling locally');
    expect(warn).toMatchObject({ level: 'warn', request_id: expect.any(String), reason: expect.any(String) });
    expect(String(warn!.reason)).toMatch(/not a llama.cpp sequence state/);
    expect(existsSync(file)).toBe(false);
  });

  it('a name outside the directory is refused without touching anything', async () => {
    const outside = path.join(root, 'outside.kv');
    writeFileSync(outside, 'x');
    const before = await fallbacks();
    const ref: KvStateRef = { file: '../outside.kv', bytes: 1, tokens: 1, sha256: '0'.repeat(64), model };
    expect((await generate(ref)).length).toBe(6);
    expect(await fallbacks()).toBe(before + 1);
    expect(existsSync(outside)).toBe(true);
  });

  it('a late completion nobody loads: its file is deleted', async () => {
    writeFileSync(path.join(KV_DIR, 'late.kv'), 'x');
    engine.discardKvState!({ file: 'late.kv', bytes: 1, tokens: 1, sha256: '0'.repeat(64), model });
    await new Promise((r) => setTimeout(r, 50));
    expect(readdirSync(KV_DIR)).not.toContain('late.kv');
  });
});
