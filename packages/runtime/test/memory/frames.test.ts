/** The request body and the chunks of the NATS request plane (transport/frames.ts), without a server. */
import fc from 'fast-check';
import {
  ChunkAssembler,
  chunkMessages,
  decodeRequest,
  encodeRequest,
  encodeRequestBytes,
  WIRE_VERSION,
} from '../../src/transport/frames';

describe('request body, wire versions 2 and 3', () => {
  test('decodes what it encodes: id, window, deadline, headers, payload', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1 }),
        fc.nat({ max: 1 << 20 }),
        fc.option(fc.integer({ min: 1, max: 2 ** 45 }), { nil: undefined }),
        fc.option(fc.dictionary(fc.string(), fc.string()), { nil: undefined }),
        fc.jsonValue(),
        (id, window, deadline, headers, payload) => {
          const body = encodeRequest(
            id,
            window,
            deadline,
            headers === undefined ? undefined : JSON.stringify(headers),
            JSON.stringify(payload),
          );
          expect(body.startsWith(`~${WIRE_VERSION}[`)).toBe(true);
          expect(decodeRequest(body)).toEqual({
            requestId: id,
            window: window === 0 ? Number.POSITIVE_INFINITY : window,
            deadline,
            headers,
            payload: JSON.parse(JSON.stringify(payload)) as unknown,
            version: 3,
            upload: undefined,
          });
        },
      ),
    );
  });

  test('the bytes of a large request are those of its text, whatever the characters', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1 }),
        fc.nat({ max: 1 << 20 }),
        fc.option(fc.integer({ min: 1, max: 2 ** 45 }), { nil: undefined }),
        fc.option(fc.dictionary(fc.string(), fc.string({ unit: 'binary' })), { nil: undefined }),
        fc.jsonValue({ maxDepth: 3 }),
        (id, window, deadline, headers, payload) => {
          const h = headers === undefined ? undefined : JSON.stringify(headers);
          const json = JSON.stringify(payload) ?? 'null';
          const bytes = encodeRequestBytes(id, window, deadline, h, json);
          expect(Buffer.from(bytes).toString('utf8')).toBe(encodeRequest(id, window, deadline, h, json));
        },
      ),
    );
    const big = JSON.stringify({ text: 'é😀x'.repeat(30_000) });
    expect(Buffer.from(encodeRequestBytes('r', 8, 5, undefined, big)).toString('utf8')).toBe(
      encodeRequest('r', 8, 5, undefined, big),
    );
  });

  test('a version 2 body still decodes; an upload announcement carries the size instead of the payload', () => {
    expect(decodeRequest('~2["a",4,0,null,{"q":1}]')).toMatchObject({
      requestId: 'a',
      window: 4,
      payload: { q: 1 },
      version: 2,
    });
    const announced = encodeRequest('b', 0, 7, undefined, '', 3_000_000);
    expect(announced).toBe('~3*["b",0,7,null,3000000]');
    expect(decodeRequest(announced)).toMatchObject({
      requestId: 'b',
      deadline: 7,
      payload: undefined,
      upload: 3_000_000,
    });
  });

  test.each([
    ['~4["a",0,0,null,1]', 'wire version 4'],
    ['~3*["a",0,0,null,0]', 'size of an announced upload'],
    ['~3*["a",0,0,null,"big"]', 'size of an announced upload'],
    ['~2*["a",0,0,null,1]', 'no JSON array'],
    ['~', 'must carry a wire version'],
    ['~2[', 'malformed request (wire version 2)'],
    ['~2["a",0,0,null]', 'not a 5-element array'],
    ['~2["",0,0,null,1]', 'request id'],
    ['~2["a",1.5,0,null,1]', 'window'],
    ['~2["a",0,-1,null,1]', 'deadline'],
    ['~2["a",0,0,[],1]', 'headers are not an object'],
    ['~2["a",0,0,{"k":2},1]', 'header value is not a string'],
  ])('refuses %s naming the problem', (body, problem) => {
    const r = decodeRequest(body);
    expect(typeof r).toBe('string');
    expect(r).toContain(problem);
  });
});

describe('chunks', () => {
  const text = (b: Uint8Array): string => Buffer.from(b).toString('utf8');

  test('any message split into chunks of any size comes back whole, in one assembly', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 5000 }), fc.integer({ min: 41, max: 700 }), (bytes, max) => {
        const chunks = chunkMessages(bytes, max);
        for (const c of chunks) expect(c.length).toBeLessThanOrEqual(max);
        const a = new ChunkAssembler(bytes.length);
        const results = chunks.map((c) => a.add(c));
        expect(results.slice(0, -1).every((r) => r.kind === 'more')).toBe(true);
        const last = results[results.length - 1]!;
        expect(last.kind).toBe('done');
        if (last.kind === 'done') expect(Buffer.compare(Buffer.from(last.bytes), Buffer.from(bytes))).toBe(0);
      }),
    );
  });

  test('forged, repeated, reordered and garbage chunks are skipped; the real ones still assemble', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 200, maxLength: 3000 }),
        fc.array(
          fc.oneof(
            fc.uint8Array({ maxLength: 60 }),
            fc.string({ maxLength: 60 }).map((s) => Buffer.from('k' + s)),
          ),
          {
            maxLength: 30,
          },
        ),
        fc.nat(),
        (message, garbage, seed) => {
          const bytes = Buffer.from(message, 'utf8');
          const chunks = chunkMessages(bytes, 100);
          const a = new ChunkAssembler(1 << 20);
          let done: Uint8Array | undefined;
          let g = 0;
          for (let i = 0; i < chunks.length; i++) {
            // Before each real chunk: some garbage, a replay of the previous chunk, a later one.
            for (let k = 0; k < (seed + i) % 3 && g < garbage.length; k++) {
              const r = a.add(garbage[g++]!);
              expect(r.kind === 'skipped' || r.kind === 'too-large').toBe(true);
            }
            if (i > 0) expect(a.add(chunks[i - 1]!).kind).toBe('skipped');
            if (i + 1 < chunks.length) expect(a.add(chunks[i + 1]!).kind).toBe('skipped');
            const r = a.add(chunks[i]!);
            if (r.kind === 'done') done = r.bytes;
            else expect(r.kind).toBe('more');
          }
          expect(done && text(done)).toBe(message);
        },
      ),
    );
  });

  test.each([
    ['k', 'malformed'],
    ['k0', 'malformed'],
    ['k0,', 'malformed'],
    ['k0,10', 'malformed'],
    ['kx,10 abc', 'malformed'],
    ['k0,0 abc', 'total 0'],
    ['k1,10 abc', 'expected'],
    ['k0,3 abcd', 'does not fit'],
    ['k0,10 ', 'does not fit'],
    ['k0,' + '9'.repeat(40) + ' a', 'malformed'],
    ['d1 [1]', 'not a chunk'],
  ])('skips %j naming why', (forged, why) => {
    const r = new ChunkAssembler(1 << 20).add(Buffer.from(forged));
    expect(r).toEqual({ kind: 'skipped', reason: expect.stringContaining(why) as unknown });
  });

  test('a first chunk announcing more than the receiver takes is refused before anything is kept', () => {
    expect(new ChunkAssembler(1000).add(Buffer.from('k0,1001 abc'))).toEqual({ kind: 'too-large', total: 1001 });
    // With the size announced beforehand (an upload), a chunk naming another total is skipped.
    expect(new ChunkAssembler(1000, 10).add(Buffer.from('k0,1001 abc')).kind).toBe('skipped');
  });
});
