import type { ChatTurn } from './protocol';

/**
 * The processor's tokenizer: the model's own, so the router's block hashes and the engine's tokens
 * agree. Engine-agnostic: the hello-world uses cl100k, a llama.cpp graph the GGUF's vocabulary.
 */
export interface Tokenizer {
  /** Token ids of a raw prompt (no chat template), as the engine encodes a completion's prompt. */
  encode(text: string): number[];
  /**
   * Token ids of a conversation rendered through the model's chat template with the generation
   * prompt, as the engine encodes a chat request. Optional: without it a chat is encoded as the
   * raw text of its last user message.
   */
  encodeChat?(messages: readonly ChatTurn[]): number[];
  /**
   * The same tokens as {@link Tokenizer.encode}, letting the event loop turn during a long text
   * (one huge prompt must not hold up every other request of the process). The processor uses it
   * when present.
   */
  encodeAsync?(text: string): Promise<number[]>;
  /** A decoder for one stream of token ids. */
  decoder(): StreamDecoder;
}

/**
 * Turns one stream's token ids into text pieces that are whole UTF-8 characters: a token that
 * ends mid-character is held back until the next completes it, so the pieces concatenate to the
 * decoded text of all tokens.
 */
export interface StreamDecoder {
  /** Adds one token; returns the text it completes ('' when it ends mid-character). */
  push(token: number): string;
  /** Whatever is still held back (at stream end). */
  flush(): string;
}

/**
 * A tokenizer that answers asynchronously (e.g. the model's own, hosted in another process); the
 * processor takes either kind.
 */
export interface AsyncTokenizer {
  encode(text: string): Promise<number[]>;
  encodeChat?(messages: readonly ChatTurn[]): Promise<number[]>;
  decoder(): AsyncStreamDecoder;
}

/** A {@link StreamDecoder} whose `push` answers asynchronously. */
export interface AsyncStreamDecoder {
  push(token: number): Promise<string>;
  flush(): string;
}
