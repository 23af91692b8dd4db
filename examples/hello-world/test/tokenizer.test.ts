import { detokenize, IncrementalDetokenizer, tokenize } from '../components/tokenizer';

/** The pieces an IncrementalDetokenizer gives for `tokens`, flush included. */
function pieces(tokens: number[]): string[] {
  const d = new IncrementalDetokenizer();
  const out = tokens.map((t) => d.push(t));
  out.push(d.flush());
  return out;
}

describe('IncrementalDetokenizer', () => {
  const texts = [
    'Tell me a joke_GeneratedBy_node-1',
    'naïve café, déjà vu',
    '日本語のテキストと絵文字 🎉🚀 mixed with ASCII',
    '👩‍👩‍👧‍👦 family, 🇫🇷 flag',
  ];

  it.each(texts)('gives pieces that join to the decoded text, token by token: %s', (text) => {
    const tokens = tokenize(text);
    const got = pieces(tokens);
    expect(got.join('')).toBe(text);
    expect(detokenize(tokens)).toBe(text);
    for (const p of got) expect(p).not.toContain('\uFFFD');
  });

  it('holds back a token that ends mid-character until the next completes it', () => {
    // An emoji that cl100k splits into several byte tokens.
    const tokens = tokenize('🎉');
    expect(tokens.length).toBeGreaterThan(1);
    expect(pieces(tokens)).toEqual([...tokens.slice(0, -1).map(() => ''), '🎉', '']);
    // An unfinished character at the end of the stream is one U+FFFD, as a one-shot decode gives.
    const d = new IncrementalDetokenizer();
    expect(d.push(tokens[0]!)).toBe('');
    expect(d.flush()).toBe('\uFFFD');
    expect(d.flush()).toBe('');
  });

  it('keeps concurrent streams apart (each holds its own unfinished character)', () => {
    const texts2 = ['🎉🚀 party', '日本語 text', 'plain ascii only'];
    const streams = texts2.map((t) => ({ tokens: tokenize(t), d: new IncrementalDetokenizer(), out: '' }));
    const longest = Math.max(...streams.map((s) => s.tokens.length));
    // One token of each stream in turn, as the Processor's concurrent requests interleave.
    for (let i = 0; i < longest; i++) for (const s of streams) if (i < s.tokens.length) s.out += s.d.push(s.tokens[i]!);
    expect(streams.map((s) => s.out + s.d.flush())).toEqual(texts2);
  });

  it('rejects a token id outside the vocabulary', () => {
    expect(() => new IncrementalDetokenizer().push(10_000_000)).toThrow(/not in the cl100k_base vocabulary/);
  });
});
