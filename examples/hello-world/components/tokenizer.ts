import cl100k, { encode } from 'gpt-tokenizer/encoding/cl100k_base';
import { TextDecoder } from 'node:util';
import type { Tokenizer } from '@dynamo-ts/llm';
import { nextTurn, turnIsLong } from '@dynamo-ts/runtime';

/** Special tokens get no special treatment: `<|endoftext|>` in user text is text (encoded as its characters). */
const ENCODE_OPTIONS = { disallowedSpecial: new Set<string>() };

/**
 * The longest stretch without a piece boundary handed to BPE at once. BPE time grows with the
 * square of a piece's length (one 400 KB word took minutes), so a longer stretch (a huge word,
 * a run of one character) is cut here; only such stretches can tokenize differently from an
 * uncut encode.
 */
export const MAX_BPE_STRETCH = 256;
/** How much text one synchronous encode call takes (the unit {@link tokenizeAsync} may yield between). */
export const TOKENIZE_CHUNK_CHARS = 16 * 1024;
/** The longest text {@link tokenize} accepts (UTF-16 units): larger input is refused before any work. */
export const MAX_TOKENIZE_CHARS = 16 * 1024 * 1024;

/** Thrown for text over {@link MAX_TOKENIZE_CHARS}; `code` is the dynamo-ts error code a caller maps to 4xx. */
export class TextTooLongError extends Error {
  readonly code = 'PAYLOAD_TOO_LARGE';
  constructor(length: number) {
    super(`text of ${length} characters is longer than the tokenizer limit of ${MAX_TOKENIZE_CHARS}`);
    this.name = 'TextTooLongError';
  }
}

function isHighSurrogate(c: number): boolean {
  return c >= 0xd800 && c <= 0xdbff;
}

/**
 * Splits `text` into pieces of at most {@link TOKENIZE_CHUNK_CHARS} that encode separately to
 * the same tokens as the whole, in one linear pass. A cut goes just before a space that follows
 * a non-space character: cl100k's pre-tokenizer never puts that pair in one piece, so tokens are
 * unchanged. A stretch of more than {@link MAX_BPE_STRETCH} without such a place is cut at that
 * length (never inside a surrogate pair), which bounds the BPE work per piece.
 */
export function splitForBpe(text: string): string[] {
  const out: string[] = [];
  let start = 0;
  /** The last safe cut after `start` (0: none yet). */
  let boundary = 0;
  for (let i = 1; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x20) {
      const prev = text.charCodeAt(i - 1);
      // Not whitespace: space, tab, CR, LF, VT, FF, and the rest of \s above ASCII are rare enough to miss a cut.
      if (prev !== 0x20 && (prev < 0x09 || prev > 0x0d)) boundary = i;
    }
    if (i - start >= TOKENIZE_CHUNK_CHARS && boundary > start) {
      out.push(text.slice(start, boundary));
      start = boundary;
    } else if (i - Math.max(start, boundary) >= MAX_BPE_STRETCH) {
      const cut = isHighSurrogate(text.charCodeAt(i - 1)) ? i - 1 : i;
      out.push(text.slice(start, cut));
      start = cut;
      boundary = 0;
    }
  }
  if (start < text.length || out.length === 0) out.push(text.slice(start));
  return out;
}

/**
 * Token ids of `text` (cl100k_base BPE, the tokenizer of GPT-4-era models), in time linear in its
 * length (see {@link splitForBpe}). Special tokens in `text` are plain text. Throws
 * {@link TextTooLongError} over {@link MAX_TOKENIZE_CHARS}.
 */
export function tokenize(text: string): number[] {
  if (text.length > MAX_TOKENIZE_CHARS) throw new TextTooLongError(text.length);
  if (text.length <= MAX_BPE_STRETCH) return encode(text, ENCODE_OPTIONS);
  const tokens: number[] = [];
  for (const piece of splitForBpe(text)) for (const t of encode(piece, ENCODE_OPTIONS)) tokens.push(t);
  return tokens;
}

/**
 * {@link tokenize}, letting the event loop turn whenever this turn has run for a few ms
 * (`turnIsLong`) so one huge prompt does not hold up every other request of the process.
 */
export async function tokenizeAsync(text: string): Promise<number[]> {
  if (text.length > MAX_TOKENIZE_CHARS) throw new TextTooLongError(text.length);
  if (text.length <= TOKENIZE_CHUNK_CHARS) return tokenize(text);
  const tokens: number[] = [];
  for (const piece of splitForBpe(text)) {
    if (turnIsLong()) await nextTurn();
    for (const t of encode(piece, ENCODE_OPTIONS)) tokens.push(t);
  }
  return tokens;
}

/** Text of `tokens` (an unfinished character at the end decodes as U+FFFD). */
export function detokenize(tokens: readonly number[]): string {
  const d = new IncrementalDetokenizer();
  let text = '';
  for (const t of tokens) text += d.push(t);
  return text + d.flush();
}

/**
 * What one token stands for: its text when its bytes are whole UTF-8 characters, else the bytes
 * (part of a character that the next tokens complete). gpt-tokenizer keeps exactly this per
 * token (`tryDecodeToken`, not in its typed API: checked here, and tested); its `decode` instead
 * runs byte tokens through one TextDecoder in streaming mode shared by the whole process, so a
 * character split across tokens took bytes left over by any other stream being decoded at the
 * same time (two concurrent answers with multi-byte characters came out garbled).
 */
const tryDecodeToken = ((): ((token: number) => string | Uint8Array | undefined) => {
  const core = (cl100k as unknown as { bytePairEncodingCoreProcessor?: { tryDecodeToken?: unknown } })
    .bytePairEncodingCoreProcessor;
  if (typeof core?.tryDecodeToken !== 'function')
    throw new Error('gpt-tokenizer: no per-token decoding (tryDecodeToken) in this version');
  return (core.tryDecodeToken as (token: number) => string | Uint8Array | undefined).bind(core);
})();

function tokenPiece(token: number): string | Uint8Array {
  const piece = tryDecodeToken(token);
  if (piece === undefined) throw new Error(`token ${token} is not in the cl100k_base vocabulary`);
  return piece;
}

/**
 * Turns a stream of token ids into text pieces. A token may end in the middle of a multi-byte
 * character; such a tail is held back (by this stream's own UTF-8 decoder) until the next token
 * completes it, so the pieces always concatenate to exactly the decoded text of all tokens. A
 * token of whole characters costs no allocation (its text is gpt-tokenizer's own string).
 */
export class IncrementalDetokenizer {
  /** Made at the first token that is part of a character (rare in most text). */
  private utf8: TextDecoder | undefined;
  /** Bytes of an unfinished character may be held in `utf8`. */
  private holding = false;

  /** Adds one token; returns the text it completes ('' when it ends mid-character). */
  push(token: number): string {
    const piece = tokenPiece(token);
    if (typeof piece === 'string') return this.holding ? this.flush() + piece : piece;
    this.utf8 ??= new TextDecoder('utf-8');
    this.holding = true;
    return this.utf8.decode(piece, { stream: true });
  }

  /** Whatever is still held back (at stream end; an unfinished character decodes as U+FFFD). */
  flush(): string {
    if (!this.holding) return '';
    this.holding = false;
    return this.utf8!.decode();
  }
}

/** cl100k as the Processor's tokenizer. */
export const cl100kTokenizer: Tokenizer = {
  encode: tokenize,
  encodeAsync: tokenizeAsync,
  decoder: () => new IncrementalDetokenizer(),
};
