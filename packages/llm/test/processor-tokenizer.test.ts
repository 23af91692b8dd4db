import { createLogger, RetryPolicy } from '@dynamo-ts/runtime';
import { ProcessorPipeline, type LlmEvent, type RouteSource, type Tokenizer } from '@dynamo-ts/llm';

/** A worker that echoes the prompt's tokens, one per item. */
function echoWorkers(): ConstructorParameters<typeof ProcessorPipeline>[0]['workers'] {
  return {
    instanceIds: () => ['w1'],
    markDown: () => undefined,
    async *generate(req: { token_ids: number[] }) {
      for (const t of req.token_ids) yield { token_ids: [t] };
      yield { token_ids: [], finish_reason: 'stop' };
    },
  } as unknown as ConstructorParameters<typeof ProcessorPipeline>[0]['workers'];
}

const router: RouteSource = {
  route: () => ({ worker_id: 'w1', overlap_blocks: 0 }),
  firstToken: () => undefined,
  finished: () => undefined,
};

async function run(tokenizer: Tokenizer, prompt: string): Promise<LlmEvent[]> {
  const logger = createLogger({ silent: true });
  const pipeline = new ProcessorPipeline({
    tokenizer,
    router,
    workers: echoWorkers(),
    retry: new RetryPolicy({ attempts: 1, migrations: 0, backoffMs: 0 }),
    logger,
  });
  const ectx = { cancelled: false, logger } as unknown as Parameters<ProcessorPipeline['generate']>[1];
  const out: LlmEvent[] = [];
  for await (const ev of pipeline.generate({ prompt, request_id: 'r1' }, ectx)) out.push(ev);
  return out;
}

/** One token per character (its code), decoded back. */
const chars = (s: string): number[] => [...s].map((c) => c.codePointAt(0)!);
const decoder: Tokenizer['decoder'] = () => ({ push: (t) => String.fromCodePoint(t), flush: () => '' });

describe('the processor and its tokenizer', () => {
  it("uses the tokenizer's encodeAsync when it has one (a long prompt lets the event loop turn)", async () => {
    const calls: string[] = [];
    const tokenizer: Tokenizer = {
      encode: (s) => (calls.push('encode'), chars(s)),
      encodeAsync: async (s) => (calls.push('encodeAsync'), chars(s)),
      decoder,
    };
    const out = await run(tokenizer, 'hello');
    expect(calls).toEqual(['encodeAsync']);
    expect(out.map((e) => e.worker_output).join('')).toBe('hello');
    expect(out.at(-1)).toMatchObject({ prompt_tokens: 5, completion_tokens: 5, finish_reason: 'stop' });
  });

  it('uses encode when there is no encodeAsync', async () => {
    const calls: string[] = [];
    const tokenizer: Tokenizer = { encode: (s) => (calls.push('encode'), chars(s)), decoder };
    const out = await run(tokenizer, 'hi');
    expect(calls).toEqual(['encode']);
    expect(out.map((e) => e.worker_output).join('')).toBe('hi');
  });
});
