import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { tinyModel, tinyVocabulary } from '../src/tiny-model';
import { runEnginesBench } from '../src/cli/bench-engines';
import { formatHandoverTable, runHandoverBench } from '../src/cli/bench-handover';

// The built CLI (run `tsc -b` first), as users run it.
const CLI = path.join(__dirname, '..', '..', 'sdk', 'dist', 'cli', 'main.js');
const GRAPH = path.join(__dirname, '..', '..', '..', 'examples', 'llm', 'graph.ts');
const dir = mkdtempSync(path.join(tmpdir(), 'llamacpp-cli-'));

function run(args: string[]): { code: number | null; stderr: string; stdout: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    encoding: 'utf8',
    timeout: 30000,
    env: { ...process.env, DYNAMO_PORT: '0', NATS_SERVER: '', ETCD_ENDPOINTS: '' },
  });
  return { code: r.status, stderr: r.stderr, stdout: r.stdout };
}

describe('dynamo-ts model tiny', () => {
  it('writes the same bytes for the same seed, other bytes for another', () => {
    const a = path.join(dir, 'a.gguf');
    const b = path.join(dir, 'b.gguf');
    expect(run(['model', 'tiny', a]).code).toBe(0);
    expect(run(['model', 'tiny', b, '--seed', '1']).code).toBe(0);
    expect(readFileSync(a).equals(readFileSync(b))).toBe(true);
    expect(readFileSync(a).equals(tinyModel({ seed: 1 }))).toBe(true);
    expect(tinyModel({ seed: 2 }).equals(tinyModel({ seed: 1 }))).toBe(false);
    const bad = run(['model', 'tiny', path.join(dir, 'c.gguf'), '--seed', 'x']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--seed/);
  });

  it('has a vocabulary without duplicates', () => {
    const v = tinyVocabulary();
    expect(new Set(v.tokens).size).toBe(v.tokens.length);
    expect(v.tokens.length).toBe(v.scores.length);
  });
});

describe('dynamo-ts serve examples/llm: bad model input exits 2 naming the flag and file', () => {
  const good = tinyModel({ seed: 3 });
  // A duplicate vocabulary entry ("<0x01>" spelled "<0x00>"): llama.cpp aborts in a GGML assert.
  const dup = Buffer.from(good);
  const at = dup.indexOf('<0x01>');
  dup.write('<0x00>', at);
  const files = {
    duplicate: path.join(dir, 'dup.gguf'),
    truncated: path.join(dir, 'trunc.gguf'),
    text: path.join(dir, 'text.gguf'),
  };
  writeFileSync(files.duplicate, dup);
  writeFileSync(files.truncated, good.subarray(0, 50000));
  writeFileSync(files.text, 'not a model\n');
  const cases: [string, string[], RegExp][] = [
    ['absent', [], /--LlamaWorker\.model is required/],
    [
      'missing',
      ['--LlamaWorker.model=/nonexistent/m.gguf'],
      /--LlamaWorker\.model=\/nonexistent\/m\.gguf: no such file/,
    ],
    ['directory', [`--LlamaWorker.model=${dir}`], /is a directory/],
    ['not GGUF', [`--LlamaWorker.model=${files.text}`], /not a GGUF file/],
    ['truncated', [`--LlamaWorker.model=${files.truncated}`], /cannot load the model/],
    ['duplicate vocabulary (engine aborts)', [`--LlamaWorker.model=${files.duplicate}`], /cannot load the model/],
  ];
  it.each(cases)('%s', (_name, flags, message) => {
    const r = run(['serve', `${GRAPH}:Frontend`, ...flags]);
    expect(r.stderr).toMatch(message);
    expect(r.code).toBe(2);
  });
});

describe('bench engines', () => {
  it('kv reuses more of the prompts than round-robin on the same workload', async () => {
    const model = path.join(dir, 'bench.gguf');
    writeFileSync(model, tinyModel({ seed: 1 }));
    const rs = await runEnginesBench({
      model,
      workers: 2,
      strategies: ['kv', 'round-robin'],
      sessions: 6,
      turns: 2,
      prefixGroups: 3,
      prefixWords: 200,
      outputTokens: 4,
      concurrency: 2,
      slots: 2,
      blockSize: 16,
      seed: 1,
    });
    expect(rs.map((r) => r.strategy)).toEqual(['kv', 'round-robin']);
    for (const r of rs) expect(r.requests).toBe(12);
    expect(rs[0]!.cached_prompt_fraction).toBeGreaterThan(rs[1]!.cached_prompt_fraction);
  }, 60000);
});

describe('dynamo-ts bench engines / bench handover flags (built CLI)', () => {
  it('each takes its own flags, and names a bad one (exit 2)', () => {
    const model = path.join(dir, 'flags.gguf');
    writeFileSync(model, tinyModel({ seed: 1 }));
    const engines = run(['bench', 'engines', '--model', model, '--workers', '2', '--strategies', 'kv,nope']);
    expect(engines.stderr).toMatch(/--strategies: unknown strategy nope/);
    expect(engines.code).toBe(2);
    const handover = run(['bench', 'handover', '--model', model, '--requests', '0']);
    expect(handover.stderr).toMatch(/--requests must be an integer >= 1/);
    expect(handover.code).toBe(2);
  });
});

describe('bench handover', () => {
  it('with the handover the decode engine evaluates one prompt token instead of all', async () => {
    const model = path.join(dir, 'handover.gguf');
    writeFileSync(model, tinyModel({ seed: 2 }));
    const rs = await runHandoverBench({ model, requests: 2, promptWords: 120, outputTokens: 2, seed: 1 });
    const off = rs.find((r) => r.mode === 'off')!;
    const on = rs.find((r) => r.mode === 'on')!;
    expect(off.decode_evaluated_per_request).toBe(off.prompt_tokens / off.requests);
    expect(on.decode_evaluated_per_request).toBe(1);
    expect(on.state_bytes).toBeGreaterThan(0);
    expect(formatHandoverTable(rs)).toMatch(/on\/off: decode ttft/);
  }, 30000);
});

describe('dynamo-ts model tiny --layers/--embedding', () => {
  it('writes a larger model, and names a bad flag (exit 2)', () => {
    const big = path.join(dir, 'big.gguf');
    expect(run(['model', 'tiny', big, '--layers', '4', '--embedding', '128']).code).toBe(0);
    expect(readFileSync(big).equals(tinyModel({ seed: 1, layers: 4, embedding: 128 }))).toBe(true);
    expect(readFileSync(big).length).toBeGreaterThan(tinyModel({ seed: 1 }).length);
    const bad = run(['model', 'tiny', big, '--embedding', '66']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--embedding/);
  });
});
