import fc from 'fast-check';
import { encode } from 'gpt-tokenizer/encoding/cl100k_base';
import {
  detokenize,
  IncrementalDetokenizer,
  MAX_BPE_STRETCH,
  MAX_TOKENIZE_CHARS,
  splitForBpe,
  TextTooLongError,
  tokenize,
  tokenizeAsync,
  cl100kTokenizer,
  TOKENIZE_CHUNK_CHARS,
} from '../components/tokenizer';

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

describe('tokenize on adversarial input', () => {
  /** The longest stretch of `piece` without a space that follows a non-space (what BPE sees as one). */
  function longestStretch(piece: string): number {
    let longest = 0;
    let from = 0;
    for (let i = 1; i <= piece.length; i++) {
      if (i === piece.length || (piece[i] === ' ' && !/\s/.test(piece[i - 1]!))) {
        longest = Math.max(longest, i - from);
        from = i;
      }
    }
    return longest;
  }

  it('cuts text only where tokens stay the same, into bounded pieces', () => {
    const word = fc.stringMatching(/^[a-zA-Z0-9éü日本,.!?'-]{1,12}$/);
    const sep = fc.constantFrom(' ', '  ', '\n', ', ', '.\n\n', '\t', ' \n ');
    const text = fc.array(fc.tuple(word, sep), { minLength: 1, maxLength: 3000 }).map((ws) => ws.flat().join(''));
    fc.assert(
      fc.property(text, (t) => {
        const pieces = splitForBpe(t);
        expect(pieces.join('')).toBe(t);
        for (const p of pieces) expect(p.length).toBeLessThanOrEqual(TOKENIZE_CHUNK_CHARS + MAX_BPE_STRETCH);
        expect(tokenize(t)).toEqual(encode(t));
      }),
      { numRuns: 60 },
    );
  });

  it.each([
    ['a 400 KB one-word prompt', 'a'.repeat(400_000)],
    ['"é" x 300000 (once a stack overflow)', 'é'.repeat(300_000)],
    ['emoji x 200000 (surrogate pairs never split)', '😀'.repeat(200_000)],
    ['400 KB of spaces', ' '.repeat(400_000)],
    ['a long word between spaces', `x ${'b'.repeat(100_000)} y`],
  ])('%s tokenizes in bounded BPE pieces and round-trips', (_name, text) => {
    const pieces = splitForBpe(text);
    expect(pieces.join('')).toBe(text);
    for (const p of pieces) expect(longestStretch(p)).toBeLessThanOrEqual(MAX_BPE_STRETCH + 1);
    expect(detokenize(tokenize(text))).toBe(text);
  });

  it('treats special tokens in user text as text', () => {
    const text = 'before <|endoftext|> after <|fim_prefix|><|endofprompt|>';
    const tokens = tokenize(text);
    expect(tokens).not.toContain(100257); // <|endoftext|> as a special token
    expect(detokenize(tokens)).toBe(text);
  });

  it('refuses text over the limit before any work, with a PAYLOAD_TOO_LARGE code', async () => {
    const huge = { length: MAX_TOKENIZE_CHARS + 1 } as unknown as string;
    expect(() => tokenize(huge)).toThrow(TextTooLongError);
    await expect(tokenizeAsync(huge)).rejects.toMatchObject({ code: 'PAYLOAD_TOO_LARGE' });
  });

  it('tokenizeAsync gives the same tokens and lets other work run between chunks', async () => {
    const text = 'lorem ipsum dolor sit amet '.repeat(10_000);
    // The turn budget is read from performance.now(): a clock that moves 1 ms per read makes the
    // budget run out after a few chunks however fast this machine encodes (the real clock made
    // this test depend on the machine's speed).
    let fake = performance.now();
    const clock = jest.spyOn(performance, 'now').mockImplementation(() => (fake += 1));
    let ticks = 0;
    let done = false;
    // A chain of immediates: each link runs only when the encoder gives the loop a turn.
    const spin = (): void => {
      ticks++;
      if (!done) setImmediate(spin);
    };
    setImmediate(spin);
    let tokens: number[];
    try {
      tokens = await tokenizeAsync(text);
    } finally {
      done = true;
      clock.mockRestore();
    }
    expect(tokens).toEqual(tokenize(text));
    // Other callbacks ran while it worked (a synchronous encode lets none run).
    expect(ticks).toBeGreaterThan(1);
    // The Processor's tokenizer offers it (the pipeline prefers encodeAsync).
    expect(cl100kTokenizer.encodeAsync).toBe(tokenizeAsync);
  });
});
