import fc from 'fast-check';
import { MAX_STOP_LENGTH, StopMatcher } from '@dynamo-ts/frontend';

/** Feeds `pieces` through a matcher; returns the emitted text and whether a stop sequence ended it. */
function run(stops: string[], pieces: string[]): { text: string; stopped: boolean } {
  const m = new StopMatcher(stops);
  let text = '';
  for (const p of pieces) {
    const r = m.push(p);
    text += r.text;
    if (r.stopped) return { text, stopped: true };
  }
  text += m.flush();
  return { text, stopped: m.done };
}

describe('StopMatcher', () => {
  it('passes text through without stop sequences', () => {
    expect(run([], ['a', 'b'])).toEqual({ text: 'ab', stopped: false });
    expect(run([''], ['a', 'b'])).toEqual({ text: 'ab', stopped: false });
  });

  it('holds back a possible beginning of a stop sequence until the next piece decides', () => {
    const m = new StopMatcher(['END']);
    expect(m.push('abcE')).toEqual({ text: 'abc', stopped: false });
    expect(m.push('Nx')).toEqual({ text: 'ENx', stopped: false });
    expect(m.push('E')).toEqual({ text: '', stopped: false });
    expect(m.push('ND tail')).toEqual({ text: '', stopped: true });
    expect(m.done).toBe(true);
    expect(m.push('more')).toEqual({ text: '', stopped: true });
  });

  it('cuts at the earliest of several stop sequences', () => {
    expect(run(['c', 'ab'], ['xxabc'])).toEqual({ text: 'xx', stopped: true });
    // "abcd" starts before "bc": the same answer as with the whole text at once.
    expect(run(['bc', 'abcd'], ['a', 'b', 'c', 'd'])).toEqual({ text: '', stopped: true });
    expect(run(['bc', 'abcd'], ['abcd'])).toEqual({ text: '', stopped: true });
    expect(run(['bc', 'abcd'], ['a', 'b', 'c', 'x'])).toEqual({ text: 'a', stopped: true });
  });

  it('waits for a longer stop sequence that starts earlier before cutting at a shorter one', () => {
    // Found by the property below: "c" completes first, but "ac " starts earlier.
    expect(run(['ac ', 'c'], ['ac', ' '])).toEqual({ text: '', stopped: true });
    expect(run(['ac ', 'c'], ['ac', 'x'])).toEqual({ text: 'a', stopped: true });
    expect(run(['ac ', 'c'], ['ac'])).toEqual({ text: 'a', stopped: true });
  });

  it('flushes what it held when the stream ends', () => {
    expect(run(['STOP'], ['hello ST'])).toEqual({ text: 'hello ST', stopped: false });
  });

  it('emits, however the text is split, exactly the text before the first stop sequence', () => {
    const alphabet = fc.constantFrom('a', 'b', 'c', ' ');
    const str = (min: number, max: number) =>
      fc.array(alphabet, { minLength: min, maxLength: max }).map((cs) => cs.join(''));
    fc.assert(
      fc.property(
        str(0, 40),
        fc.array(str(1, 4), { minLength: 0, maxLength: 3 }),
        fc.array(fc.nat(40), { maxLength: 10 }),
        (text, stops, cuts) => {
          const points = [...new Set(cuts.map((c) => Math.min(c, text.length)))].sort((x, y) => x - y);
          const pieces: string[] = [];
          let at = 0;
          for (const p of [...points, text.length]) {
            pieces.push(text.slice(at, p));
            at = p;
          }
          const first = Math.min(...stops.map((s) => text.indexOf(s)).filter((i) => i >= 0), Infinity);
          const expected = first === Infinity ? text : text.slice(0, first);
          expect(run(stops, pieces)).toEqual({ text: expected, stopped: first !== Infinity });
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('does work linear in the text, however long the stop sequences and small the pieces', () => {
    // Once quadratic: every piece rescanned the held text against every prefix of each sequence.
    const long = 'a'.repeat(MAX_STOP_LENGTH - 1) + 'b';
    const stops = Array.from({ length: 16 }, (_, i) => long.slice(i));
    const m = new StopMatcher(stops);
    let out = '';
    // 200 000 one-character pieces that keep every sequence one step from completing.
    for (let i = 0; i < 200_000; i++) out += m.push('a').text;
    expect(m.done).toBe(false);
    expect(out.length).toBe(200_000 - (MAX_STOP_LENGTH - 1));
    expect(m.push('b')).toEqual({ text: '', stopped: true });
  });
});
