import fc from 'fast-check';
import { copyJson, decodeJson, encodeJson } from '../../src/util/json';

const roundTrip = (v: unknown): unknown => decodeJson(encodeJson(v, 'value'));
const BIG = 1024 * 1024;

describe('copyJson (the in-memory planes’ copy of payloads and items)', () => {
  it('equals the JSON round trip for any JSON-like value', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        expect(copyJson(v, 'value', BIG)).toEqual(roundTrip(v));
      }),
      { numRuns: 500 },
    );
  });

  it('equals the JSON round trip for values JSON rewrites', () => {
    class Point {
      constructor(
        public x: number,
        public y: number,
      ) {}
    }
    const values: unknown[] = [
      undefined,
      -0,
      [-0, NaN, Infinity, undefined, () => 1],
      { a: undefined, b: 1, f: () => 2, n: NaN },
      new Date(0),
      { toJSON: () => 'custom' },
      new Point(1, 2),
      [1, , 3],
      JSON.parse('{"__proto__": {"x": 1}}') as unknown,
      Object.assign(Object.create(null) as object, { k: 'v' }),
    ];
    for (const v of values) {
      const copy = copyJson(v, 'value', BIG);
      expect(JSON.stringify(copy)).toBe(JSON.stringify(roundTrip(v)) ?? 'null');
      expect(copy).toEqual(roundTrip(v));
    }
    expect(Object.is(copyJson(-0, 'v', BIG), 0)).toBe(true);
  });

  it('copies: mutating the copy leaves the original alone', () => {
    const original = { token_ids: [1, 2, 3], nested: { list: [{ a: 1 }] } };
    const copy = copyJson(original, 'value', BIG) as typeof original;
    copy.token_ids.push(4);
    copy.nested.list[0]!.a = 2;
    expect(original).toEqual({ token_ids: [1, 2, 3], nested: { list: [{ a: 1 }] } });
  });

  it('refuses what JSON refuses, naming the value', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => copyJson(cyclic, 'request payload', BIG)).toThrow(/request payload is not JSON-serializable/);
    expect(() => copyJson({ n: 1n }, 'response item', BIG)).toThrow(/response item is not JSON-serializable/);
  });

  it('checks the encoded size against the limit exactly', () => {
    const s = 'x'.repeat(100);
    // Encoded: the 100 characters and two quotes.
    expect(copyJson(s, 'v', 102)).toBe(s);
    expect(() => copyJson(s, 'v', 101)).toThrow(expect.objectContaining({ code: 'PAYLOAD_TOO_LARGE' }));
    const tokens = Array.from({ length: 1000 }, (_, i) => i);
    const size = JSON.stringify({ token_ids: tokens }).length;
    expect(copyJson({ token_ids: tokens }, 'v', size)).toEqual({ token_ids: tokens });
    expect(() => copyJson({ token_ids: tokens }, 'v', size - 1)).toThrow(
      expect.objectContaining({ code: 'PAYLOAD_TOO_LARGE' }),
    );
  });

  it('without a size limit still takes the JSON round trip for what is not plain data', () => {
    const inf = Number.POSITIVE_INFINITY;
    expect(copyJson({ d: new Date(0), u: undefined, n: Number.NaN }, 'event data', inf)).toEqual({
      d: '1970-01-01T00:00:00.000Z',
      n: null,
    });
    expect(() => copyJson({ n: 1n }, 'event data', inf)).toThrow(/event data is not JSON-serializable/);
  });
});
