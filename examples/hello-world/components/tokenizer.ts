import cl100k, { encode } from 'gpt-tokenizer/encoding/cl100k_base';
import { TextDecoder } from 'node:util';
import type { Tokenizer } from '@dynamo-ts/llm';

/** Token ids of `text` (cl100k_base BPE, the tokenizer of GPT-4-era models). */
export function tokenize(text: string): number[] {
  return encode(text);
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
export const cl100kTokenizer: Tokenizer = { encode: tokenize, decoder: () => new IncrementalDetokenizer() };
