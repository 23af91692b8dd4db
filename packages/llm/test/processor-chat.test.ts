import { createLogger } from '@dynamo-ts/runtime';
import { embeddedPlatform, serveGraph, type GraphHandle } from '@dynamo-ts/sdk';
import {
  processorService,
  routerService,
  workerService,
  type ChatTurn,
  type EngineRequest,
  type LlmEvent,
  type Tokenizer,
} from '@dynamo-ts/llm';

/** An engine that records what it was asked and answers one token. */
const seen: EngineRequest[] = [];
const Echo = workerService({
  name: 'Echo',
  embeddedReplicas: 1,
  createEngine: () => ({
    async *generate(req) {
      seen.push(req);
      yield { tokenIds: [7], finishReason: 'stop' };
    },
  }),
});
const Router = routerService({ worker: Echo });

/** Raw text: one token per character. A chat: 1000 + the turn's index, a role token, then the text. */
const raw = (text: string): number[] => [...text].map((c) => c.codePointAt(0)!);
const decoder: Tokenizer['decoder'] = () => ({ push: (t) => `<${t}>`, flush: () => '' });
const chatTokenizer: Tokenizer = {
  encode: raw,
  encodeChat: (messages: readonly ChatTurn[]) =>
    messages.flatMap((m, i) => [1000 + i, m.role === 'user' ? 1 : 2, ...raw(m.content)]),
  decoder,
};
const plainTokenizer: Tokenizer = { encode: raw, decoder };

describe.each([
  ['with a chat template', chatTokenizer],
  ['without one', plainTokenizer],
])('the processor, tokenizer %s', (_name, tokenizer) => {
  let graph: GraphHandle;
  const ns = `chat-${process.pid}-${tokenizer === chatTokenizer ? 't' : 'p'}`;

  beforeAll(async () => {
    const Processor = processorService({ router: Router, worker: Echo, tokenizer: () => tokenizer });
    graph = await serveGraph(Processor, {
      platform: embeddedPlatform(),
      settings: { namespace: ns, port: 0, workerName: 'w', leaseTtlMs: 10000 },
      config: { Processor: { router_mode: 'local' } },
      logger: createLogger({ silent: true }),
    });
  });
  afterAll(() => graph.close({ timeoutMs: 1000 }));

  async function generate(req: Record<string, unknown>): Promise<LlmEvent[]> {
    const rt = graph.get('Processor')[0]!.runtime;
    const client = await rt.namespace(ns).component('Processor').endpoint('generate').client();
    const out: LlmEvent[] = [];
    for await (const ev of client.generate<LlmEvent>(req)) out.push(ev);
    return out;
  }

  const messages = [
    { role: 'user', content: 'ab' },
    { role: 'assistant', content: 'c' },
    { role: 'user', content: 'd' },
  ];

  it('encodes a chat through encodeChat when the tokenizer has one, else the last user message raw', async () => {
    seen.length = 0;
    const out = await generate({ prompt: 'd', request_id: 'c1', messages });
    const expected = tokenizer === chatTokenizer ? [1000, 1, 97, 98, 1001, 2, 99, 1002, 1, 100] : [100];
    expect(seen[0]!.contextTokenIds).toEqual(expected);
    expect(out.at(-1)).toMatchObject({ prompt_tokens: expected.length, finish_reason: 'stop' });
  });

  it('encodes a prompt without messages (completions, /generate) raw', async () => {
    seen.length = 0;
    await generate({ prompt: 'ab', request_id: 'c2' });
    expect(seen[0]!.contextTokenIds).toEqual([97, 98]);
  });

  it('refuses more turns than MAX_CHAT_TURNS, or a turn without a role, as INVALID_ARGUMENT', async () => {
    const many = Array.from({ length: 1025 }, () => ({ role: 'user', content: 'x' }));
    await expect(generate({ prompt: 'x', request_id: 'c3', messages: many })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
    await expect(generate({ prompt: 'x', request_id: 'c4', messages: [{ content: 'x' }] })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
  });
});
