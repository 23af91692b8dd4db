/** The version 2 request body of the NATS request plane (transport/frames.ts), without a server. */
import fc from 'fast-check';
import { decodeRequest, encodeRequest, WIRE_VERSION } from '../../src/transport/frames';

describe('request body, wire version 2', () => {
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
          });
        },
      ),
    );
  });

  test.each([
    ['~3["a",0,0,null,1]', 'wire version 3'],
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
