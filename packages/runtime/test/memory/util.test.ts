/** The small helpers under src/util. */
import { Channel } from '../../src/util/channel';
import { Deque } from '../../src/util/deque';
import { parseSubject, subjectMatches } from '../../src/util/subject';
import { checkPayloadSize, encodeJson } from '../../src/util/json';
import { sleep } from '../../src/util/abort';
import { rejection } from '@dynamo-ts/runtime/compliance';
import { LinkedSet, type Linked } from '../../src/util/linked-set';
import { nextTurn, turnIsLong, TURN_SLICE_MS } from '../../src/util/turn';

describe('subjects', () => {
  const m = (p: string, s: string): boolean => subjectMatches(parseSubject(p, true), parseSubject(s, false));
  test.each([
    ['a.b', 'a.b', true],
    ['a.b', 'a.c', false],
    ['a.*', 'a.b', true],
    ['a.*', 'a.b.c', false],
    ['a.*', 'a', false],
    ['*.b.*', 'x.b.y', true],
    ['a.>', 'a.b', true],
    ['a.>', 'a.b.c.d', true],
    ['a.>', 'a', false],
    ['>', 'a', true],
    ['a.*.>', 'a.b', false],
    ['a.*.>', 'a.b.c', true],
  ])('%s matches %s: %s', (p, s, want) => {
    expect(m(p, s)).toBe(want);
  });
  test('invalid subjects', () => {
    for (const s of ['', 'a..b', '.a', 'a.', 'a b', 'a.>.b']) expect(() => parseSubject(s, true)).toThrow();
    expect(() => parseSubject('a.*', false)).toThrow();
    expect(parseSubject('a*b.c', false)).toEqual(['a*b', 'c']);
  });
});

describe('Channel', () => {
  test('buffers, ends after the buffer, throws the error once', async () => {
    const c = new Channel<number>();
    c.push(1);
    c.push(2);
    c.end(new Error('bye'));
    expect(c.push(3)).toBe(false);
    expect(await c.next()).toEqual({ value: 1, done: false });
    expect(await c.next()).toEqual({ value: 2, done: false });
    expect((await rejection(c.next())).message).toBe('bye');
    expect((await c.next()).done).toBe(true);
  });
  test('abort drops the buffer and wakes a waiting reader', async () => {
    const c = new Channel<number>();
    const pending = c.next();
    c.abort(new Error('stop'));
    expect((await rejection(pending)).message).toBe('stop');
    const d = new Channel<number>();
    d.push(1);
    d.abort();
    expect((await d.next()).done).toBe(true);
  });
  test('capacity and waitForSpace give backpressure; return calls onReturn once', async () => {
    let returned = 0;
    const c = new Channel<number>({ capacity: 2, onReturn: () => returned++ });
    c.push(1);
    c.push(2);
    expect(c.hasSpace).toBe(false);
    let woke = false;
    const space = c.waitForSpace().then(() => (woke = true));
    await Promise.resolve();
    expect(woke).toBe(false);
    await c.next();
    await space;
    expect(woke).toBe(true);
    await c.return();
    await c.return();
    expect(returned).toBe(1);
    expect(c.push(3)).toBe(false);
  });
});

describe('Deque', () => {
  test('push, shift, unshift across compaction', () => {
    const d = new Deque<number>();
    for (let i = 0; i < 5000; i++) d.push(i);
    for (let i = 0; i < 3000; i++) expect(d.shift()).toBe(i);
    d.unshift(-1);
    expect(d.peek()).toBe(-1);
    expect(d.size).toBe(2001);
    expect([...d].slice(0, 3)).toEqual([-1, 3000, 3001]);
    d.clear();
    expect(d.shift()).toBeUndefined();
  });
});

describe('json and abort helpers', () => {
  test('encodeJson sends undefined as null and refuses BigInt', () => {
    expect(encodeJson(undefined, 'x')).toBe('null');
    expect(() => encodeJson({ a: 1n }, 'payload')).toThrow(/payload is not JSON-serializable/);
  });
  test('checkPayloadSize counts UTF-8 bytes', () => {
    expect(() => checkPayloadSize('é'.repeat(600), 1000)).toThrow(/1200 bytes exceeds the limit of 1000/);
    expect(() => checkPayloadSize('e'.repeat(1000), 1000)).not.toThrow();
  });
  test('sleep rejects with CANCELLED when aborted', async () => {
    const ac = new AbortController();
    const p = sleep(10_000, ac.signal);
    ac.abort();
    expect((await rejection(p)).code).toBe('CANCELLED');
    await sleep(1);
  });
});

describe('LinkedSet', () => {
  interface Item extends Linked<Item> {
    n: number;
  }
  const item = (n: number): Item => ({ n, linkPrev: undefined, linkNext: undefined, linkOwner: undefined });

  it('adds, deletes from any place, and lists what is left; an item belongs to one set', () => {
    const s = new LinkedSet<Item>();
    const other = new LinkedSet<Item>();
    const items = [1, 2, 3, 4].map(item);
    for (const i of items) s.add(i);
    s.add(items[0]!);
    expect(s.size).toBe(4);
    expect(s.delete(items[2]!)).toBe(true);
    expect(s.delete(items[2]!)).toBe(false);
    expect(s.delete(items[3]!)).toBe(true);
    expect(s.values().map((i) => i.n)).toEqual([2, 1]);
    other.add(items[0]!);
    expect(other.size).toBe(0);
    expect(other.delete(items[0]!)).toBe(false);
    // A snapshot: deleting while walking it visits every item once.
    for (const i of s.values()) s.delete(i);
    expect(s.size).toBe(0);
    expect(s.values()).toEqual([]);
    other.add(items[0]!);
    expect(other.values()).toEqual([items[0]]);
  });
});

describe('turnIsLong', () => {
  const busy = (ms: number): void => {
    const end = performance.now() + ms;
    while (performance.now() < end);
  };

  it('says so once this turn has run for a slice, and starts a new slice in the next turn', async () => {
    await nextTurn();
    expect(turnIsLong()).toBe(false);
    busy(TURN_SLICE_MS / 4);
    expect(turnIsLong()).toBe(false);
    busy(TURN_SLICE_MS);
    expect(turnIsLong()).toBe(true);
    // Promise jobs are the same turn.
    await Promise.resolve();
    expect(turnIsLong()).toBe(true);
    await nextTurn();
    expect(turnIsLong()).toBe(false);
  });
});
