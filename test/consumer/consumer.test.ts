/**
 * The packages as an outside project gets them: `npm pack` every published package (its
 * `prepack` builds from clean), install the tarballs into a fresh project in a temp dir outside
 * the monorepo, compile each package README's example with `strict` TypeScript as CommonJS
 * (node16) and as ESM (nodenext), with TypeScript 5 and, where it installs, 7, and run them.
 * The examples are the README's own code blocks, extracted here: a README that stops compiling
 * fails this test.
 *
 * Run: `npm run test:consumer` (`.ci/run` runs it after `npm test`; it rebuilds the packages'
 * dist, so it never runs beside the other suites).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '@dynamo-ts/runtime/testing';

const ROOT = path.resolve(__dirname, '../..');
const PACKAGES = ['runtime', 'router', 'mocker', 'sdk', 'frontend', 'llm'] as const;

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], cwd: string, timeoutMs = 240_000): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd, timeout: timeoutMs, maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

async function mustRun(cmd: string, args: string[], cwd: string): Promise<string> {
  const r = await run(cmd, args, cwd);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}):\n${r.stderr}\n${r.stdout}`);
  return r.stdout;
}

/** The ```ts blocks of a package README, in order. */
function readmeBlocks(pkg: string): string[] {
  const text = readFileSync(path.join(ROOT, 'packages', pkg, 'README.md'), 'utf8');
  return [...text.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

/** The first shell line of the sdk README that serves its example (`npx dynamo-ts serve echo:Echo ...`). */
function sdkServeLine(): string[] {
  const text = readFileSync(path.join(ROOT, 'packages/sdk/README.md'), 'utf8');
  const line = /^npx dynamo-ts serve (echo:Echo[^\n#]*)/m.exec(text);
  if (line === null) throw new Error('sdk README: no `npx dynamo-ts serve echo:Echo` line');
  // Only simple quoting is used there: --Key='value'.
  return [
    'serve',
    ...line[1]!
      .trim()
      .split(/\s+/)
      .map((a) => a.replace(/'([^']*)'/g, '$1')),
  ];
}

/** A started process, its output so far, and a way to wait for a line. */
class Proc {
  readonly child: ChildProcess;
  out = '';
  exit: Promise<number | null>;

  constructor(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}) {
    this.child = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.on('data', (d: Buffer) => (this.out += d.toString()));
    this.child.stderr!.on('data', (d: Buffer) => (this.out += d.toString()));
    this.exit = new Promise((resolve) => this.child.on('exit', (code) => resolve(code)));
  }

  async waitFor(re: RegExp, timeoutMs = 20_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (!re.test(this.out)) {
      if (Date.now() > until || this.child.exitCode !== null) {
        throw new Error(`waiting for ${re}: got\n${this.out}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async stop(): Promise<number | null> {
    if (this.child.exitCode === null) this.child.kill('SIGTERM');
    return this.exit;
  }
}

async function post(url: string, body: unknown): Promise<{ status: number; json: unknown }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

/** Polls a POST until the server listens. */
async function postWhenUp(url: string, body: unknown, proc: Proc): Promise<{ status: number; json: unknown }> {
  const until = Date.now() + 20_000;
  for (;;) {
    try {
      return await post(url, body);
    } catch (e) {
      if (Date.now() > until || proc.child.exitCode !== null) throw new Error(`${url}: ${String(e)}\n${proc.out}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

const EXAMPLES = {
  'router.ts': () => readmeBlocks('router')[0]!,
  'frontend.ts': () => readmeBlocks('frontend')[0]!,
  'runtime.ts': () => readmeBlocks('runtime')[0]!,
  'echo.ts': () => readmeBlocks('sdk')[0]!,
  'llm.ts': () => readmeBlocks('llm')[0]!,
  'mocker.ts': () => readmeBlocks('mocker')[0]!,
};

describe('consumer project outside the monorepo (packed tarballs)', () => {
  let tmp: string;
  let app: string;
  let ts7 = false;
  let ts7Reason = '';

  beforeAll(async () => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'dynamo-ts-consumer-'));
    const tarballs = path.join(tmp, 'tarballs');
    mkdirSync(tarballs);
    const workspaces = PACKAGES.flatMap((p) => ['-w', `@dynamo-ts/${p}`]);
    await mustRun('npm', ['pack', '--silent', '--pack-destination', tarballs, ...workspaces], ROOT);
    const files = readdirSync(tarballs).map((f) => path.join(tarballs, f));
    expect(files).toHaveLength(PACKAGES.length);

    app = path.join(tmp, 'app');
    mkdirSync(app);
    writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'consumer', private: true }, null, 2));
    await mustRun(
      'npm',
      ['install', '--no-audit', '--no-fund', '--prefer-offline', ...files, 'typescript@5', '@types/node@20', 'tsx@4'],
      app,
    );
    // TypeScript 7 (the native compiler) where it installs: beside 5, under another name.
    const r = await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', 'ts7@npm:typescript@7'], app);
    ts7 = r.code === 0;
    if (!ts7) ts7Reason = r.stderr.split('\n').slice(-5).join('\n');

    for (const [flavour, type, module] of [
      ['cjs', 'commonjs', 'node16'],
      ['esm', 'module', 'nodenext'],
    ] as const) {
      const dir = path.join(app, flavour);
      mkdirSync(dir);
      writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ type }));
      writeFileSync(
        path.join(dir, 'tsconfig.json'),
        JSON.stringify({
          compilerOptions: {
            strict: true,
            target: 'es2022',
            module,
            moduleResolution: module,
            types: ['node'],
            skipLibCheck: false,
            outDir: 'dist',
            rootDir: '.',
          },
          include: ['*.ts'],
        }),
      );
      for (const [file, source] of Object.entries(EXAMPLES)) writeFileSync(path.join(dir, file), source());
    }
  }, 360_000);

  afterAll(() => {
    if (tmp && process.env.KEEP_CONSUMER !== '1') rmSync(tmp, { recursive: true, force: true });
  });

  it('installs outside the monorepo', () => {
    expect(path.relative(ROOT, app).startsWith('..')).toBe(true);
    const sdk = JSON.parse(readFileSync(path.join(app, 'node_modules/@dynamo-ts/sdk/package.json'), 'utf8')) as {
      name: string;
    };
    expect(sdk.name).toBe('@dynamo-ts/sdk');
  });

  /** `tsc -p .` of the CommonJS and the ESM project at once (`outDir` apart per compiler). */
  const compileBoth = (tsc: string, outDir: string) =>
    Promise.all(
      ['cjs', 'esm'].map((flavour) =>
        run(process.execPath, [tsc, '-p', '.', '--outDir', outDir], path.join(app, flavour)).then((r) => ({
          flavour,
          code: r.code,
          output: r.stdout + r.stderr,
        })),
      ),
    );

  it('the README examples compile with strict TypeScript 5, as CommonJS (node16) and ESM (nodenext)', async () => {
    const results = await compileBoth(path.join(app, 'node_modules/typescript/bin/tsc'), 'dist');
    expect(results).toEqual([
      { flavour: 'cjs', code: 0, output: '' },
      { flavour: 'esm', code: 0, output: '' },
    ]);
  }, 180_000);

  it('the README examples compile with strict TypeScript 7 where it installs', async () => {
    if (!ts7) {
      // Under CI the registry is there, so a failed install fails; locally it is reported.
      if (process.env.CI === 'true') throw new Error(`TypeScript 7 did not install:\n${ts7Reason}`);
      process.stderr.write(`TypeScript 7 did not install here, not checked:\n${ts7Reason}\n`);
      return;
    }
    const results = await compileBoth(path.join(app, 'node_modules/ts7/bin/tsc'), 'dist7');
    expect(results).toEqual([
      { flavour: 'cjs', code: 0, output: '' },
      { flavour: 'esm', code: 0, output: '' },
    ]);
  }, 180_000);

  it('the tarballs ship no bench code and no dangling source or declaration map', () => {
    for (const pkg of PACKAGES) {
      const dir = path.join(app, 'node_modules/@dynamo-ts', pkg);
      const files = readdirSync(dir, { recursive: true }) as string[];
      expect(files.filter((f) => /bench/.test(f))).toEqual([]);
      for (const map of files.filter((f) => f.endsWith('.map'))) {
        const { sources } = JSON.parse(readFileSync(path.join(dir, map), 'utf8')) as { sources: string[] };
        for (const s of sources) {
          const target = path.resolve(path.dirname(path.join(dir, map)), s);
          expect(() => readFileSync(target)).not.toThrow();
        }
      }
    }
  });

  it('importing the frontend or the runtime root loads no gRPC, etcd3 or nats.js', async () => {
    const probe = `
      for (const m of ['@dynamo-ts/frontend', '@dynamo-ts/runtime']) require(m);
      const heavy = Object.keys(require.cache).filter((k) => /node_modules\\/(@grpc|etcd3|@nats-io)\\//.test(k));
      console.log(JSON.stringify({ modules: Object.keys(require.cache).length, heavy: heavy.length }));`;
    const out = JSON.parse(await mustRun(process.execPath, ['-e', probe], app)) as { modules: number; heavy: number };
    expect(out.heavy).toBe(0);
    expect(out.modules).toBeGreaterThan(10);
  });

  it("runs the router README's routing service (ESM): POST /route picks a worker", async () => {
    const port = await freePort();
    const proc = new Proc(process.execPath, ['dist/router.js'], path.join(app, 'esm'), { PORT: String(port) });
    try {
      const r = await postWhenUp(`http://127.0.0.1:${port}/route`, { token_ids: [1, 2, 3, 4], request_id: 'r1' }, proc);
      expect(r.status).toBe(200);
      expect(['worker-a', 'worker-b']).toContain((r.json as { worker_id: string }).worker_id);
      const bad = await post(`http://127.0.0.1:${port}/route`, { token_ids: 'nope' });
      expect(bad.status).toBe(400); // the router's INVALID_ARGUMENT, as the example maps it
    } finally {
      await proc.stop();
    }
  }, 60_000);

  it("runs the mocker README's engine behind a router (CJS): the router learns the engine's cache", async () => {
    const r = await run(process.execPath, ['dist/mocker.js'], path.join(app, 'cjs'));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    // 256 tokens of 64-token blocks: the engine stored 4 blocks and announced them.
    expect(r.stdout).toMatch(/^8 tokens from w1; cached blocks now: 4$/m);
  }, 60_000);

  it("runs the frontend README's server with its custom generate function (CJS)", async () => {
    const port = await freePort();
    const proc = new Proc(process.execPath, ['dist/frontend.js'], path.join(app, 'cjs'), { PORT: String(port) });
    try {
      const r = await postWhenUp(`http://127.0.0.1:${port}/generate`, { prompt: 'hello dynamo world' }, proc);
      expect(r.status).toBe(200);
      expect(JSON.stringify(r.json)).toContain('dynamo');
      const chat = await post(`http://127.0.0.1:${port}/v1/completions`, {
        model: 'echo',
        prompt: 'a b c',
        max_tokens: 2,
      });
      expect(chat.status).toBe(200);
      expect((chat.json as { choices: { text: string; finish_reason: string }[] }).choices[0]).toMatchObject({
        text: 'a b ',
        finish_reason: 'length',
      });
      const wrong = await post(`http://127.0.0.1:${port}/v1/completions`, { model: 'nope', prompt: 'x' });
      expect(wrong.status).toBe(404);
    } finally {
      expect(await proc.stop()).toBe(0);
    }
  }, 60_000);

  it("runs the runtime README's example (ESM)", async () => {
    const r = await run(process.execPath, ['dist/runtime.js'], path.join(app, 'esm'), 20_000);
    expect(r.stderr).toBe('');
    expect(r.stdout.split('\n')).toEqual(['hello', 'dynamo', '']);
  }, 30_000);

  it("serves the sdk README's service with the README's own `dynamo-ts serve` line, and stops on SIGTERM", async () => {
    const bin = path.join(app, 'node_modules/.bin/dynamo-ts');
    // echo.ts through tsx (an optional peer, installed here), as the README runs it.
    const proc = new Proc(bin, sdkServeLine(), path.join(app, 'cjs'), { DYNAMO_LOG_FORMAT: 'json' });
    await proc.waitFor(/"service ready"/);
    await new Promise((r) => setTimeout(r, 500));
    expect(proc.child.exitCode).toBeNull(); // an embedded graph with no HTTP server keeps serving
    expect(await proc.stop()).toBe(0);
    expect(proc.out).toMatch(/"stopped"/);
  }, 60_000);
});
