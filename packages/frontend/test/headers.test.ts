import type { Request } from 'express';
import { compileBodySchema, validateBody, wantsEventStream } from '@dynamo-ts/frontend';

describe('wantsEventStream', () => {
  it.each([
    ['text/event-stream', true],
    ['TEXT/Event-Stream', true],
    ['application/json, text/event-stream;q=0.9', true],
    ['application/json,\ttext/event-stream', true],
    ['text/event-streams', true],
    ['application/json', false],
    ['application/x-text/event-stream', false],
    ['', false],
    [undefined, false],
  ])('%p -> %p', (accept, want) => {
    expect(wantsEventStream(accept)).toBe(want);
  });
});

describe('validateBody content types', () => {
  const validate = compileBodySchema<{ prompt: string }>({ type: 'object', required: ['prompt'] });
  /** Enough of a request: its headers, body and express's `is()` (here: never a match). */
  const request = (contentType: string | undefined): Request =>
    ({ headers: { 'content-type': contentType }, body: { prompt: 'p' }, is: () => false }) as unknown as Request;

  it.each([
    'application/json',
    'application/json; charset=utf-8',
    'Application/JSON;charset=UTF-8',
    'application/json ;x=1',
  ])('accepts %p without a parse', (ct) => {
    expect(validateBody(request(ct), validate)).toEqual({ prompt: 'p' });
  });

  it.each(['text/plain', 'application/jsonx', 'application/json-patch+json', undefined])(
    'leaves %p to express (415 when it does not match)',
    (ct) => {
      expect(() => validateBody(request(ct), validate)).toThrow(/Content-Type must be application\/json/);
    },
  );
});
