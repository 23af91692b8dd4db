import OpenAI from 'openai';
import { Registry } from 'prom-client';
import { startFrontend, type FrontendServer } from '@dynamo-ts/frontend';
import { fakeGenerate, sseData, words, type FakeRecord } from './support/fake';

interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}
interface ChatCompletion {
  id: string;
  object: string;
  created: number;
  model: string;
  choices: Array<{ index: number; message: { role: string; content: string }; finish_reason: string }>;
  usage: Usage;
}
interface ChatChunk {
  id: string;
  object: string;
  model: string;
  choices: Array<{ index: number; delta: { role?: string; content?: string }; finish_reason: string | null }>;
  usage?: Usage | null;
}
interface TextCompletion {
  id: string;
  object: string;
  model: string;
  choices: Array<{ index: number; text: string; finish_reason: string | null }>;
  usage?: Usage | null;
}
interface ErrorJson {
  error: { message: string; type: string; code: string; param: string | null };
}

const MODEL = 'fake-model';
const ANSWER = 'Tell me a joke_GeneratedBy_fake';

describe('OpenAI routes', () => {
  let server: FrontendServer;
  let client: OpenAI;
  const record: FakeRecord = { requests: [], aborted: new Map() };
  let served: string[] = [MODEL, 'other-model'];

  beforeAll(async () => {
    server = await startFrontend({
      port: 0,
      host: '127.0.0.1',
      generate: fakeGenerate(record),
      models: () => served,
      registry: new Registry(),
    });
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  });
  afterAll(async () => {
    await server.close();
  });
  afterEach(() => {
    served = [MODEL, 'other-model'];
  });

  const post = async (path: string, body: unknown): Promise<Response> =>
    fetch(`${server.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
  const lastRequest = () => record.requests[record.requests.length - 1]!;

  describe('GET /v1/models', () => {
    it('lists the served models in the OpenAI list shape', async () => {
      const res = await fetch(`${server.url}/v1/models`);
      expect(res.status).toBe(200);
      const body = (await res.json()) as { object: string; data: Array<Record<string, unknown>> };
      expect(body.object).toBe('list');
      expect(body.data.map((m) => m.id)).toEqual([MODEL, 'other-model']);
      for (const m of body.data) {
        expect(m).toEqual({ id: m.id, object: 'model', created: expect.any(Number), owned_by: 'dynamo-ts' });
      }
      const page = await client.models.list();
      expect(page.data.map((m) => m.id)).toEqual([MODEL, 'other-model']);
    });

    it('retrieves one model, 404 model_not_found for another', async () => {
      expect((await client.models.retrieve(MODEL)).id).toBe(MODEL);
      const res = await fetch(`${server.url}/v1/models/nope`);
      expect(res.status).toBe(404);
      expect(((await res.json()) as ErrorJson).error).toMatchObject({ code: 'model_not_found', param: 'model' });
    });
  });

  describe('POST /v1/chat/completions', () => {
    const messages = [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: 'What is up' },
      { role: 'assistant', content: 'Nothing.' },
      { role: 'user', content: 'Tell me a joke' },
    ];

    it('answers the last user message with usage', async () => {
      const res = await post('/v1/chat/completions', { model: MODEL, messages, temperature: 0.7, top_p: 0.9 });
      expect(res.status).toBe(200);
      const body = (await res.json()) as ChatCompletion;
      expect(lastRequest().prompt).toBe('Tell me a joke');
      expect(lastRequest().model).toBe(MODEL);
      expect(body.id).toBe(`chatcmpl-${res.headers.get('x-request-id')}`);
      expect(body).toMatchObject({
        object: 'chat.completion',
        model: MODEL,
        choices: [{ index: 0, message: { role: 'assistant', content: ANSWER }, finish_reason: 'stop' }],
        usage: { prompt_tokens: 4, completion_tokens: 5, total_tokens: 9 },
      });
      expect(Math.abs(body.created - Date.now() / 1000)).toBeLessThan(60);
    });

    it('takes the text parts of a multi-part user message', async () => {
      const res = await post('/v1/chat/completions', {
        model: MODEL,
        messages: [
          {
            role: 'user',
            content: [
              { type: 'text', text: 'Tell me' },
              { type: 'image_url', image_url: { url: 'x' } },
              { type: 'text', text: ' a joke' },
            ],
          },
        ],
      });
      expect(res.status).toBe(200);
      expect(((await res.json()) as ChatCompletion).choices[0]!.message.content).toBe(ANSWER);
    });

    it('streams chat.completion.chunk events ending with [DONE]', async () => {
      const res = await post('/v1/chat/completions', { model: MODEL, messages, stream: true });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
      const data = sseData(await res.text());
      expect(data[data.length - 1]).toBe('[DONE]');
      const chunks = data.slice(0, -1).map((d) => JSON.parse(d) as ChatChunk);
      expect(chunks.every((c) => c.object === 'chat.completion.chunk' && c.model === MODEL)).toBe(true);
      expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
      expect(chunks[0]!.choices[0]!.delta).toEqual({ role: 'assistant', content: '' });
      expect(chunks.map((c) => c.choices[0]!.delta.content ?? '').join('')).toBe(ANSWER);
      expect(chunks.length).toBe(1 + words('Tell me a joke').length + 1 + 1);
      const last = chunks[chunks.length - 1]!;
      expect(last.choices[0]).toMatchObject({ delta: {}, finish_reason: 'stop' });
      expect(chunks.slice(0, -1).every((c) => c.choices[0]!.finish_reason === null)).toBe(true);
      expect(chunks.every((c) => !('usage' in c))).toBe(true);
    });

    it('adds a usage chunk when stream_options.include_usage is set', async () => {
      const res = await post('/v1/chat/completions', {
        model: MODEL,
        messages,
        stream: true,
        stream_options: { include_usage: true },
      });
      const data = sseData(await res.text());
      const chunks = data.slice(0, -1).map((d) => JSON.parse(d) as ChatChunk);
      const usage = chunks[chunks.length - 1]!;
      expect(usage.choices).toEqual([]);
      expect(usage.usage).toEqual({ prompt_tokens: 4, completion_tokens: 5, total_tokens: 9 });
      expect(chunks.slice(0, -1).every((c) => c.usage === null)).toBe(true);
    });

    it('honours max_tokens, and max_completion_tokens over it', async () => {
      let res = await post('/v1/chat/completions', { model: MODEL, messages, max_tokens: 2 });
      let body = (await res.json()) as ChatCompletion;
      expect(lastRequest().max_tokens).toBe(2);
      expect(body.choices[0]).toMatchObject({ message: { content: 'Tell me' }, finish_reason: 'length' });
      expect(body.usage).toEqual({ prompt_tokens: 4, completion_tokens: 2, total_tokens: 6 });

      res = await post('/v1/chat/completions', { model: MODEL, messages, max_tokens: 2, max_completion_tokens: 3 });
      body = (await res.json()) as ChatCompletion;
      expect(lastRequest().max_tokens).toBe(3);
      expect(body.choices[0]).toMatchObject({ message: { content: 'Tell me a' }, finish_reason: 'length' });
    });

    it('cuts the output before a stop sequence and aborts the upstream', async () => {
      const res = await post('/v1/chat/completions', { model: MODEL, messages, stop: ' a j' });
      const body = (await res.json()) as ChatCompletion;
      expect(body.choices[0]).toMatchObject({ message: { content: 'Tell me' }, finish_reason: 'stop' });
      expect(record.aborted.get(res.headers.get('x-request-id')!)).toBe('stop sequence reached');
    });

    it('cuts a stream at the earliest of several stop sequences, even across chunks', async () => {
      const res = await post('/v1/chat/completions', {
        model: MODEL,
        messages: [{ role: 'user', content: 'Tell me a joke' }],
        stream: true,
        stop: ['joke', 'e a'],
      });
      const chunks = sseData(await res.text())
        .slice(0, -1)
        .map((d) => JSON.parse(d) as ChatChunk);
      expect(chunks.map((c) => c.choices[0]!.delta.content ?? '').join('')).toBe('Tell m');
      expect(chunks[chunks.length - 1]!.choices[0]!.finish_reason).toBe('stop');
    });

    it('rejects n > 1 naming n', async () => {
      const res = await post('/v1/chat/completions', { model: MODEL, messages, n: 2 });
      expect(res.status).toBe(400);
      expect(((await res.json()) as ErrorJson).error).toMatchObject({
        type: 'invalid_request_error',
        param: 'n',
        message: expect.stringMatching(/^n must be 1/),
      });
      expect((await post('/v1/chat/completions', { model: MODEL, messages, n: 1 })).status).toBe(200);
    });

    const bad: Array<[string, Record<string, unknown>, string, RegExp]> = [
      ['no model', { messages }, 'model', /model is required/],
      ['no messages', { model: MODEL }, 'messages', /messages is required/],
      ['messages not an array', { model: MODEL, messages: 'hi' }, 'messages', /messages must be of type array/],
      ['empty messages', { model: MODEL, messages: [] }, 'messages', /messages/],
      ['a bad role', { model: MODEL, messages: [{ role: 'robot', content: 'x' }] }, 'messages.0.role', /one of/],
      [
        'content a number',
        { model: MODEL, messages: [{ role: 'user', content: 3 }] },
        'messages.0.content',
        /string or array or null/,
      ],
      ['no user message', { model: MODEL, messages: [{ role: 'system', content: 'x' }] }, 'messages', /user message/],
      [
        'an empty user message',
        { model: MODEL, messages: [{ role: 'user', content: '' }] },
        'messages.0.content',
        /no text/,
      ],
      ['temperature a string', { model: MODEL, messages, temperature: 'hot' }, 'temperature', /number or null/],
      ['top_p out of range', { model: MODEL, messages, top_p: 3 }, 'top_p', /<= 1/],
      ['max_tokens 0', { model: MODEL, messages, max_tokens: 0 }, 'max_tokens', />= 1/],
      ['max_tokens a float', { model: MODEL, messages, max_tokens: 1.5 }, 'max_tokens', /integer/],
      ['stop a number', { model: MODEL, messages, stop: 5 }, 'stop', /string or array or null/],
      ['stop with a number', { model: MODEL, messages, stop: ['a', 5] }, 'stop.1', /string/],
      ['stream a string', { model: MODEL, messages, stream: 'yes' }, 'stream', /boolean/],
      ['logprobs requested', { model: MODEL, messages, logprobs: true }, 'logprobs', /not supported/],
    ];
    it.each(bad)('answers %s with 400 naming the field', async (_name, body, param, message) => {
      const res = await post('/v1/chat/completions', body);
      expect(res.status).toBe(400);
      const err = ((await res.json()) as ErrorJson).error;
      expect(err.type).toBe('invalid_request_error');
      expect(err.param).toBe(param);
      expect(err.message).toMatch(message);
    });

    it('accepts and ignores fields it does not use', async () => {
      const res = await post('/v1/chat/completions', {
        model: MODEL,
        messages,
        seed: 7,
        user: 'u',
        presence_penalty: 0.1,
        response_format: { type: 'text' },
        tools: [],
        not_an_openai_field: { x: 1 },
      });
      expect(res.status).toBe(200);
    });

    it('answers an unknown model with 404 model_not_found', async () => {
      const res = await post('/v1/chat/completions', { model: 'gpt-nope', messages });
      expect(res.status).toBe(404);
      expect(((await res.json()) as ErrorJson).error).toMatchObject({
        type: 'invalid_request_error',
        code: 'model_not_found',
        param: 'model',
        message: expect.stringContaining('gpt-nope'),
      });
    });

    it('answers 503 while no model is served', async () => {
      served = [];
      const res = await post('/v1/chat/completions', { model: MODEL, messages });
      expect(res.status).toBe(503);
      expect(((await res.json()) as ErrorJson).error.code).toBe('unavailable');
    });

    it('maps an upstream failure before the first token to its status, streaming or not', async () => {
      for (const stream of [false, true]) {
        const res = await post('/v1/chat/completions', {
          model: MODEL,
          messages: [{ role: 'user', content: 'unavailable' }],
          stream,
        });
        expect(res.status).toBe(503);
        expect(((await res.json()) as ErrorJson).error.code).toBe('unavailable');
      }
    });

    it('sends a failure after the first token as an error data event', async () => {
      const res = await post('/v1/chat/completions', {
        model: MODEL,
        messages: [{ role: 'user', content: 'fail-mid' }],
        stream: true,
      });
      expect(res.status).toBe(200);
      const data = sseData(await res.text());
      expect(data[data.length - 1]).toBe('[DONE]');
      const err = JSON.parse(data[data.length - 2]!) as ErrorJson;
      expect(err.error).toMatchObject({ code: 'internal', message: 'engine crashed' });
    });
  });

  describe('POST /v1/completions', () => {
    it('completes a prompt with usage', async () => {
      const res = await post('/v1/completions', { model: MODEL, prompt: 'Tell me a joke', logprobs: null });
      expect(res.status).toBe(200);
      const body = (await res.json()) as TextCompletion;
      expect(body.id).toBe(`cmpl-${res.headers.get('x-request-id')}`);
      expect(body).toMatchObject({
        object: 'text_completion',
        model: MODEL,
        choices: [{ index: 0, text: ANSWER, finish_reason: 'stop' }],
        usage: { prompt_tokens: 4, completion_tokens: 5, total_tokens: 9 },
      });
    });

    it('accepts a prompt array of one string', async () => {
      const res = await post('/v1/completions', { model: MODEL, prompt: ['Tell me a joke'] });
      expect(((await res.json()) as TextCompletion).choices[0]!.text).toBe(ANSWER);
    });

    it('streams text_completion chunks, with usage when asked', async () => {
      const res = await post('/v1/completions', {
        model: MODEL,
        prompt: 'Tell me a joke',
        stream: true,
        stream_options: { include_usage: true },
        max_tokens: 3,
      });
      const data = sseData(await res.text());
      expect(data[data.length - 1]).toBe('[DONE]');
      const chunks = data.slice(0, -1).map((d) => JSON.parse(d) as TextCompletion);
      expect(chunks.every((c) => c.object === 'text_completion')).toBe(true);
      expect(chunks.map((c) => c.choices[0]?.text ?? '').join('')).toBe('Tell me a');
      expect(chunks[chunks.length - 2]!.choices[0]!.finish_reason).toBe('length');
      expect(chunks[chunks.length - 1]).toMatchObject({
        choices: [],
        usage: { prompt_tokens: 4, completion_tokens: 3, total_tokens: 7 },
      });
    });

    it('cuts at a stop sequence', async () => {
      const res = await post('/v1/completions', { model: MODEL, prompt: 'Tell me a joke', stop: ['_Gen'] });
      const body = (await res.json()) as TextCompletion;
      expect(body.choices[0]).toMatchObject({ text: 'Tell me a joke', finish_reason: 'stop' });
    });

    const bad: Array<[string, Record<string, unknown>, string, RegExp]> = [
      ['no prompt', { model: MODEL }, 'prompt', /prompt is required/],
      ['a numeric prompt', { model: MODEL, prompt: 5 }, 'prompt', /string or array/],
      ['token-id prompts', { model: MODEL, prompt: [[1, 2]] }, 'prompt', /token-id/],
      ['a batch of prompts', { model: MODEL, prompt: ['a', 'b'] }, 'prompt', /batches of 2/],
      ['an empty prompt', { model: MODEL, prompt: '' }, 'prompt', /must not be empty/],
      ['n 3', { model: MODEL, prompt: 'a', n: 3 }, 'n', /n must be 1/],
      ['best_of 2', { model: MODEL, prompt: 'a', best_of: 2 }, 'best_of', /best_of/],
      ['echo', { model: MODEL, prompt: 'a', echo: true }, 'echo', /echo/],
      ['logprobs', { model: MODEL, prompt: 'a', logprobs: 2 }, 'logprobs', /not supported/],
      ['max_tokens a string', { model: MODEL, prompt: 'a', max_tokens: '9' }, 'max_tokens', /integer or null/],
    ];
    it.each(bad)('answers %s with 400 naming the field', async (_name, body, param, message) => {
      const res = await post('/v1/completions', body);
      expect(res.status).toBe(400);
      const err = ((await res.json()) as ErrorJson).error;
      expect(err.param).toBe(param);
      expect(err.message).toMatch(message);
    });
  });

  describe('the official openai client', () => {
    it('completes and streams chat', async () => {
      const done = await client.chat.completions.create({
        model: MODEL,
        messages: [{ role: 'user', content: 'Tell me a joke' }],
      });
      expect(done.choices[0]!.message.content).toBe(ANSWER);
      expect(done.usage?.completion_tokens).toBe(5);
      const stream = await client.chat.completions.create({
        model: MODEL,
        messages: [{ role: 'user', content: 'Tell me a joke' }],
        stream: true,
        stream_options: { include_usage: true },
      });
      let text = '';
      let usage: OpenAI.CompletionUsage | null | undefined;
      for await (const chunk of stream) {
        text += chunk.choices[0]?.delta.content ?? '';
        if (chunk.usage) usage = chunk.usage;
      }
      expect(text).toBe(ANSWER);
      expect(usage).toEqual({ prompt_tokens: 4, completion_tokens: 5, total_tokens: 9 });
    });

    it('raises BadRequestError, NotFoundError and APIError mid-stream', async () => {
      await expect(
        client.chat.completions.create({ model: MODEL, messages: 'nope' as unknown as [] }),
      ).rejects.toBeInstanceOf(OpenAI.BadRequestError);
      await expect(client.completions.create({ model: MODEL, prompt: 'a', n: 2 })).rejects.toBeInstanceOf(
        OpenAI.BadRequestError,
      );
      await expect(
        client.chat.completions.create({ model: 'missing', messages: [{ role: 'user', content: 'x' }] }),
      ).rejects.toBeInstanceOf(OpenAI.NotFoundError);
      const stream = await client.chat.completions.create({
        model: MODEL,
        messages: [{ role: 'user', content: 'fail-mid' }],
        stream: true,
      });
      const consume = async (): Promise<void> => {
        for await (const _ of stream) void _;
      };
      await expect(consume()).rejects.toThrow(/engine crashed/);
    });
  });

  describe('POST /generate with the extended events', () => {
    it("keeps the seed's exact event shape and skips empty events", async () => {
      const res = await fetch(`${server.url}/generate`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
        body: JSON.stringify({ prompt: 'Tell me a joke', request_id: 'seed' }),
      });
      const events = sseData(await res.text()).map((d) => JSON.parse(d) as Record<string, unknown>);
      expect(events.length).toBe(5);
      expect(events.every((e) => Object.keys(e).sort().join() === 'request_id,worker_output')).toBe(true);
      expect(events.map((e) => e.worker_output).join('')).toBe(ANSWER);

      const unary = await post('/generate', { prompt: 'Tell me a joke', request_id: 'seed2' });
      expect(await unary.json()).toEqual({ worker_output: ANSWER, request_id: 'seed2' });
    });
  });
});
