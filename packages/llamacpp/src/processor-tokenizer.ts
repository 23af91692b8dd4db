import type { AsyncTokenizer } from '@dynamo-ts/llm';
import { InvalidArgumentError } from '@dynamo-ts/runtime';
import type { AnyServiceDefinition, ServiceContext } from '@dynamo-ts/sdk';
import { GgufTokenizer } from './tokenizer';
import { checkModelFile } from './worker';

/**
 * A processor's tokenizer factory: the GGUF vocabulary of `modelPath` when given, else of the
 * file the first worker of `worker` registers in discovery (`model_path`: the same machine or a
 * shared path), waiting up to `waitMs` for one.
 */
export function modelTokenizer(
  worker: AnyServiceDefinition,
  modelPath?: string,
  waitMs = 120_000,
): (ctx: ServiceContext<object>) => Promise<AsyncTokenizer> {
  return async (ctx) => {
    let file = modelPath;
    if (!file) {
      const client = await ctx.client(worker.name, 'generate');
      const [first] = await client.waitForInstances({ min: 1, timeoutMs: waitMs });
      const p = first?.metadata?.model_path;
      if (typeof p !== 'string' || !p)
        throw new InvalidArgumentError(`${worker.name} registers no model_path: give the processor the GGUF file`);
      file = p;
    }
    const abs = checkModelFile(file, 'tokenizer model');
    const tok = await GgufTokenizer.open(abs, ctx.logger);
    ctx.signal.addEventListener('abort', () => void tok.close(), { once: true });
    return tok;
  };
}
