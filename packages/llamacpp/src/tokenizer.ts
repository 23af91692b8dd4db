import type { AsyncStreamDecoder, AsyncTokenizer } from '@dynamo-ts/llm';
import type { Logger } from '@dynamo-ts/runtime';
import { EngineProcess } from './engine-process';

/** Tokens of context a decoder detokenizes before the new ones (spacing depends on the neighbours). */
const CONTEXT_TOKENS = 8;

/**
 * The model's own tokenizer (its GGUF vocabulary, loaded without weights) in a child process, so
 * the processor's token ids are exactly the engine's and the router's hashes match its cache.
 */
export class GgufTokenizer implements AsyncTokenizer {
  private constructor(private readonly proc: EngineProcess) {}

  /** Loads the vocabulary of `modelPath`. */
  static async open(modelPath: string, logger: Logger): Promise<GgufTokenizer> {
    const proc = new EngineProcess({ modelPath, vocabOnly: true, logger, restart: true });
    await proc.start();
    return new GgufTokenizer(proc);
  }

  encode(text: string): Promise<number[]> {
    return this.proc.tokenize(text);
  }

  detokenize(tokens: number[]): Promise<string> {
    return this.proc.detokenize(tokens);
  }

  decoder(): AsyncStreamDecoder {
    return new GgufStreamDecoder(this.proc);
  }

  close(): Promise<void> {
    return this.proc.close();
  }
}

/**
 * Detokenizes one stream: the text a token adds is the text of (a few tokens before it + the
 * tokens held) less that of the tokens before it; a result ending in an unfinished UTF-8
 * character (U+FFFD) is held until the next token completes it (at most 4 tokens).
 */
class GgufStreamDecoder implements AsyncStreamDecoder {
  private done: number[] = [];
  private held: number[] = [];

  constructor(private readonly proc: EngineProcess) {}

  async push(token: number): Promise<string> {
    this.held.push(token);
    const before = this.done.slice(-CONTEXT_TOKENS);
    const [a, b] = await Promise.all([
      before.length ? this.proc.detokenize(before) : Promise.resolve(''),
      this.proc.detokenize(before.concat(this.held)),
    ]);
    const piece = b.startsWith(a) ? b.slice(a.length) : b;
    if (piece.endsWith('\uFFFD') && this.held.length < 4) return '';
    this.done.push(...this.held);
    this.held = [];
    return piece;
  }

  flush(): string {
    // Held tokens are an unfinished character: it decodes as U+FFFD.
    const n = this.held.length;
    this.held = [];
    return n ? '\uFFFD' : '';
  }
}
