import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { setImmediate as turn } from 'node:timers/promises';
import { createLogger, flushLogs } from '../src/logger';

/** A stream that records each write it gets. */
function capture(): { stream: PassThrough; writes: string[]; lines: () => Record<string, unknown>[] } {
  const stream = new PassThrough();
  const writes: string[] = [];
  stream.on('data', (c: Buffer) => writes.push(c.toString('utf8')));
  const lines = (): Record<string, unknown>[] =>
    writes
      .join('')
      .split('\n')
      .filter((l) => l.length > 0)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { stream, writes, lines };
}

describe('createLogger (json)', () => {
  it('writes one JSON object a line with level, message, fields and an ISO timestamp', async () => {
    const out = capture();
    const log = createLogger({ stream: out.stream, defaultFields: { service: 's' } });
    log.info('http request', { request_id: 'r1', status: 200 });
    await turn();
    const [line] = out.lines();
    expect(line).toEqual({
      level: 'info',
      message: 'http request',
      service: 's',
      request_id: 'r1',
      status: 200,
      timestamp: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
    });
    expect(Object.keys(line!).slice(0, 2)).toEqual(['level', 'message']);
  });

  it("merges child fields, a line's own fields last, and never lets a field replace level or message", async () => {
    const out = capture();
    const log = createLogger({ stream: out.stream })
      .child({ component: 'Processor', a: 1 })
      .child({ request_id: 'r2' });
    log.warn('slow', { a: 2, level: 'debug', message: 'other' });
    await turn();
    expect(out.lines()).toEqual([
      expect.objectContaining({ level: 'warn', message: 'slow', component: 'Processor', a: 2, request_id: 'r2' }),
    ]);
  });

  it('writes keys in order (level, message, logger fields, line fields, timestamp), skipping undefined', async () => {
    const out = capture();
    const parent = createLogger({ stream: out.stream }).child({ component: 'Frontend', a: 1 });
    const child = parent.child({ request_id: 'r3', gone: undefined });
    parent.info('parent first');
    child.info('child', { status: 200, skipped: undefined });
    child.info('no fields');
    createLogger({ stream: out.stream }).info('bare', {});
    await turn();
    const lines = out.lines();
    expect(lines.map((l) => Object.keys(l))).toEqual([
      ['level', 'message', 'component', 'a', 'timestamp'],
      ['level', 'message', 'component', 'a', 'request_id', 'status', 'timestamp'],
      ['level', 'message', 'component', 'a', 'request_id', 'timestamp'],
      ['level', 'message', 'timestamp'],
    ]);
    expect(lines[1]).toMatchObject({
      level: 'info',
      message: 'child',
      component: 'Frontend',
      request_id: 'r3',
      status: 200,
    });
  });

  it('drops lines below its level and writes nothing when silent', async () => {
    const out = capture();
    const log = createLogger({ stream: out.stream, level: 'warn' });
    log.debug('d');
    log.info('i');
    log.warn('w');
    log.error('e');
    expect(log.isLevelEnabled('info')).toBe(false);
    expect(log.isLevelEnabled('error')).toBe(true);
    const quiet = createLogger({ stream: out.stream, silent: true });
    quiet.error('nothing');
    expect(quiet.isLevelEnabled('error')).toBe(false);
    await turn();
    expect(out.lines().map((l) => l.message)).toEqual(['w', 'e']);
  });

  it('writes what JSON.stringify cannot: bigints, errors, cycles', async () => {
    const out = capture();
    const cyclic: Record<string, unknown> = { name: 'c' };
    cyclic.self = cyclic;
    createLogger({ stream: out.stream }).error('odd fields', { n: 2n ** 70n, err: new TypeError('bad'), cyclic });
    await turn();
    expect(out.lines()[0]).toMatchObject({
      n: '1180591620717411303424',
      err: { name: 'TypeError', message: 'bad' },
      cyclic: { name: 'c', self: '[Circular]' },
    });
  });

  it('hands the lines of one event-loop turn to the stream in one write, in order, across loggers', async () => {
    const out = capture();
    const a = createLogger({ stream: out.stream });
    const b = a.child({ component: 'B' });
    for (let i = 0; i < 100; i++) (i % 2 ? a : b).info(`line ${i}`);
    expect(out.writes).toHaveLength(0);
    await turn();
    expect(out.writes).toHaveLength(1);
    expect(out.lines().map((l) => l.message)).toEqual(Array.from({ length: 100 }, (_, i) => `line ${i}`));
    a.info('next turn');
    flushLogs();
    expect(out.writes).toHaveLength(2);
  });

  it('stamps a line with the time it was logged, though it is written at the end of the turn', async () => {
    const out = capture();
    const log = createLogger({ stream: out.stream });
    const before = Date.now();
    log.info('early');
    const after = Date.now();
    // Busy for 30 ms in the same turn: the line is formatted after this.
    while (Date.now() < after + 30);
    expect(out.writes).toHaveLength(0);
    await turn();
    const stamp = Date.parse(out.lines()[0]!.timestamp as string);
    expect(stamp).toBeGreaterThanOrEqual(before);
    expect(stamp).toBeLessThanOrEqual(after);
  });

  it("writes a line whose fields cannot be read without them, and the turn's other lines in full", async () => {
    const out = capture();
    const log = createLogger({ stream: out.stream });
    const bad = {
      get status(): number {
        throw new Error('getter failed');
      },
    };
    log.info('first', { i: 1 });
    log.warn('unreadable', bad);
    log.info('last', { i: 3 });
    await turn();
    expect(out.lines()).toEqual([
      expect.objectContaining({ level: 'info', message: 'first', i: 1 }),
      expect.objectContaining({
        level: 'warn',
        message: 'unreadable',
        log_error: 'fields could not be written: getter failed',
      }),
      expect.objectContaining({ level: 'info', message: 'last', i: 3 }),
    ]);
  });

  it('writes the pending lines when the process exits', () => {
    const logger = path.resolve(__dirname, '../src/logger.ts');
    const script = `const { createLogger } = require(${JSON.stringify(logger)});
      const log = createLogger();
      for (let i = 0; i < 3; i++) log.info('before exit', { i });
      process.exit(0);`;
    const run = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], { encoding: 'utf8' });
    expect(run.status).toBe(0);
    const lines = run.stderr
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { message: string; i: number });
    expect(lines.map((l) => [l.message, l.i])).toEqual([
      ['before exit', 0],
      ['before exit', 1],
      ['before exit', 2],
    ]);
  });
});

describe('createLogger (pretty)', () => {
  it('writes human lines through winston: time, level, component, message, fields', async () => {
    const out = capture();
    createLogger({ stream: out.stream, format: 'pretty' }).child({ component: 'Router' }).info('ready', { port: 1 });
    await new Promise((r) => setTimeout(r, 20));
    expect(out.writes.join('')).toMatch(/^\d\d:\d\d:\d\d\.\d{3} INFO  \[Router\] ready \{"port":1\}\n$/);
  });
});
