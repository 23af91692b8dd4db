import OpenAI from 'openai';
import { createLogger } from '@dynamo-ts/runtime';
import { embeddedPlatform, serveGraph, type GraphHandle } from '@dynamo-ts/sdk';
import { Frontend } from '../components/graph';
import { workerEvents, type WorkerRequestEvent } from '../components/worker';
import { uniqueNamespace } from './helpers';

const ANSWER = /^Tell me a joke_GeneratedBy_(node-[01])$/;

/** The value of the samples named `name` whose labels include `labels` (summed), in Prometheus text. */
function metricValue(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  let sum: number | undefined;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum = (sum ?? 0) + Number(m[3]);
  }
  return sum;
}

/** The official `openai` client (v6) against the embedded hello-world graph. */
describe('hello-world through the OpenAI API', () => {
  let graph: GraphHandle;
  let url: string;
  let client: OpenAI;

  beforeAll(async () => {
    graph = await serveGraph(Frontend, {
      platform: embeddedPlatform(),
      settings: { namespace: uniqueNamespace('openai'), port: 0, workerName: 'node', leaseTtlMs: 10000 },
      // A token every 2 ms, so a long answer streams long enough to be aborted mid-way.
      config: { Frontend: { port: 0, host: '127.0.0.1' }, DummyWorker: { token_delay_ms: 2 } },
      logger: createLogger({ silent: true }),
    });
    url = graph.get('Frontend')[0]!.instance.metadata!.url as string;
    client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none', maxRetries: 0 });
  });
  afterAll(async () => {
    await graph.close({ timeoutMs: 2000 });
  });

  it("lists the workers' model", async () => {
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual(['hello-world']);
  });

  it('answers a chat with the last user message, with usage', async () => {
    const r = await client.chat.completions.create({
      model: 'hello-world',
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Which team won 2020 World Series' },
        { role: 'assistant', content: 'The Dodgers.' },
        { role: 'user', content: 'Tell me a joke' },
      ],
    });
    expect(r.object).toBe('chat.completion');
    expect(r.choices[0]!.message.content).toMatch(ANSWER);
    expect(r.choices[0]!.finish_reason).toBe('stop');
    // "Tell me a joke" is 4 tokens; the answer echoes them and adds the suffix's tokens.
    expect(r.usage!.prompt_tokens).toBe(4);
    expect(r.usage!.completion_tokens).toBeGreaterThan(4);
    expect(r.usage!.total_tokens).toBe(r.usage!.prompt_tokens + r.usage!.completion_tokens);
  });

  it('streams a chat token by token', async () => {
    const stream = await client.chat.completions.create({
      model: 'hello-world',
      messages: [{ role: 'user', content: 'Tell me a joke' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    const pieces: string[] = [];
    let finish: string | null | undefined;
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream) {
      const c = chunk.choices[0];
      if (c?.delta.content) pieces.push(c.delta.content);
      if (c?.finish_reason) finish = c.finish_reason;
      if (chunk.usage) usage = chunk.usage;
    }
    expect(pieces.join('')).toMatch(ANSWER);
    expect(pieces.length).toBeGreaterThan(4);
    expect(finish).toBe('stop');
    expect(usage?.prompt_tokens).toBe(4);
  });

  it('completes and streams text completions', async () => {
    const r = await client.completions.create({ model: 'hello-world', prompt: 'Tell me a joke' });
    expect(r.choices[0]!.text).toMatch(ANSWER);
    expect(r.usage!.prompt_tokens).toBe(4);
    const stream = await client.completions.create({ model: 'hello-world', prompt: 'Tell me a joke', stream: true });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.text ?? '';
    expect(text).toMatch(ANSWER);
  });

  it('cuts the answer at max_tokens, streaming or not', async () => {
    const r = await client.chat.completions.create({
      model: 'hello-world',
      messages: [{ role: 'user', content: 'Tell me a joke' }],
      max_tokens: 2,
    });
    expect(r.choices[0]!.message.content).toBe('Tell me');
    expect(r.choices[0]!.finish_reason).toBe('length');
    expect(r.usage!.completion_tokens).toBe(2);
    const stream = await client.completions.create({
      model: 'hello-world',
      prompt: 'Tell me a joke',
      max_tokens: 3,
      stream: true,
    });
    let text = '';
    let finish: string | null | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.text ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect(text).toBe('Tell me a');
    expect(finish).toBe('length');
  });

  it('cuts the answer before a stop sequence', async () => {
    const r = await client.chat.completions.create({
      model: 'hello-world',
      messages: [{ role: 'user', content: 'Tell me a joke' }],
      stop: ['_GeneratedBy_'],
    });
    expect(r.choices[0]!.message.content).toBe('Tell me a joke');
    expect(r.choices[0]!.finish_reason).toBe('stop');
  });

  it('raises BadRequestError for a malformed body and NotFoundError for an unknown model', async () => {
    await expect(
      client.chat.completions.create({ model: 'hello-world', messages: 'Tell me a joke' as unknown as [] }),
    ).rejects.toBeInstanceOf(OpenAI.BadRequestError);
    await expect(
      client.chat.completions.create({ model: 'hello-world', messages: [{ role: 'user', content: 'x' }], n: 3 }),
    ).rejects.toMatchObject({ status: 400, param: 'n' });
    const notFound = client.completions.create({ model: 'gpt-4o', prompt: 'Tell me a joke' });
    await expect(notFound).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    await expect(notFound).rejects.toMatchObject({ code: 'model_not_found' });
  });

  /**
   * Streams a long chat, aborts it after a few chunks, and returns the time from the abort to the
   * worker handler's AbortSignal firing (seen through `workerEvents`).
   */
  async function abortMidStream(requestId: string): Promise<{ elapsedMs: number; worker: string; received: string }> {
    const started = new Promise<WorkerRequestEvent>((resolve) => {
      const on = (e: WorkerRequestEvent): void => {
        if (e.request_id !== requestId) return;
        workerEvents.off('request_started', on);
        resolve(e);
      };
      workerEvents.on('request_started', on);
    });
    const cancelled = new Promise<number>((resolve) => {
      const on = (e: WorkerRequestEvent): void => {
        if (e.request_id !== requestId) return;
        workerEvents.off('request_cancelled', on);
        resolve(performance.now());
      };
      workerEvents.on('request_cancelled', on);
    });
    const abort = new AbortController();
    // ~400 tokens at 2 ms each: the answer would stream for about a second.
    const prompt = Array.from({ length: 200 }, (_, i) => `word${i}`).join(' ');
    const stream = await client.chat.completions.create(
      { model: 'hello-world', messages: [{ role: 'user', content: prompt }], stream: true },
      { signal: abort.signal, headers: { 'x-request-id': requestId } },
    );
    let received = '';
    let abortedAt = 0;
    for await (const chunk of stream) {
      received += chunk.choices[0]?.delta.content ?? '';
      if (received.length > 20 && !abortedAt) {
        abortedAt = performance.now();
        abort.abort();
      }
    }
    expect(abortedAt).toBeGreaterThan(0);
    expect(received.length).toBeLessThan(prompt.length);
    return { elapsedMs: (await cancelled) - abortedAt, worker: (await started).worker_name, received };
  }

  it('cancels the worker handler within 100 ms of a client aborting its stream', async () => {
    // The first abort in this process costs the client side tens of ms of jest's source-map work
    // on the stack traces of the abort errors (undici reads them); it must cancel the worker too,
    // but the time is measured on the second one.
    const first = await abortMidStream(`abort-warm-${Date.now()}`);
    expect(first.worker).toMatch(/^node-[01]$/);
    const second = await abortMidStream(`abort-${Date.now()}`);
    expect(second.received).toMatch(/^word0 word1 word2/);
    process.stderr.write(
      `worker handler cancelled ${second.elapsedMs.toFixed(1)} ms after the client aborted ` +
        `(first abort in the process: ${first.elapsedMs.toFixed(1)} ms)\n`,
    );
    expect(second.elapsedMs).toBeLessThan(100);
  });

  it('exposes the frontend metrics with real values after that traffic', async () => {
    const res = await fetch(`${url}/metrics`);
    expect(res.status).toBe(200);
    const text = await res.text();
    const model = { model: 'hello-world' };
    // Successes: 2 chats, 2 text completions, 2 cut at max_tokens, 1 cut at a stop sequence.
    expect(metricValue(text, 'dynamo_frontend_requests_total', { ...model, status: 'success' })).toBe(7);
    expect(
      metricValue(text, 'dynamo_frontend_requests_total', {
        ...model,
        endpoint: 'chat_completions',
        request_type: 'stream',
        status: 'cancelled',
      }),
    ).toBe(2);
    expect(metricValue(text, 'dynamo_frontend_requests_total', { status: 'rejected' })).toBe(3);
    expect(metricValue(text, 'dynamo_frontend_inflight_requests', model)).toBe(0);
    // A first token for each of the 7 and for the two aborted streams.
    expect(metricValue(text, 'dynamo_frontend_time_to_first_token_seconds_count', model)).toBe(9);
    expect(metricValue(text, 'dynamo_frontend_time_to_first_token_seconds_sum', model)).toBeGreaterThan(0);
    expect(metricValue(text, 'dynamo_frontend_inter_token_latency_seconds_count', model)).toBeGreaterThan(0);
    expect(metricValue(text, 'dynamo_frontend_input_sequence_tokens_sum', model)).toBeGreaterThan(0);
    expect(metricValue(text, 'dynamo_frontend_output_sequence_tokens_sum', model)).toBeGreaterThan(0);
  });
});
