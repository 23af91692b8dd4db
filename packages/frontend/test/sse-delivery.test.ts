import http from 'node:http';
import { startFrontend, type FrontendServer, type GenerateEvent, type GenerateRequest } from '@dynamo-ts/frontend';

/**
 * The frontend corks an SSE response until the end of the event loop's turn (one socket write for
 * the events of a fast stream): these tests check that the client still gets one well-formed event
 * per upstream item, and that an event is delivered before the upstream produces the next one.
 */
describe('SSE delivery', () => {
  let server: FrontendServer;
  /** Resolvers the 'lockstep' stream waits on: the test resolves one when it has read the event. */
  const acks: Array<() => void> = [];
  let waiting: (() => void) | undefined;

  const generate = async function* (req: GenerateRequest): AsyncGenerator<GenerateEvent> {
    if (req.prompt === 'lockstep') {
      for (let i = 0; i < 5; i++) {
        yield { worker_output: `t${i} `, request_id: req.request_id };
        // The next item comes only after the client has read this one.
        await new Promise<void>((resolve) => {
          acks.push(resolve);
          waiting?.();
        });
      }
      return;
    }
    // A fast stream: every item available at once.
    for (let i = 0; i < 3000; i++) yield { worker_output: `w${i} `, request_id: req.request_id };
  };

  beforeAll(async () => {
    server = await startFrontend({ port: 0, host: '127.0.0.1', generate });
  });
  afterAll(async () => {
    await server.close();
  });

  function open(prompt: string, requestId: string): Promise<http.IncomingMessage> {
    const url = new URL(`${server.url}/generate`);
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          host: url.hostname,
          port: url.port,
          path: url.pathname,
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
        },
        resolve,
      );
      req.on('error', reject);
      req.end(JSON.stringify({ prompt, request_id: requestId }));
    });
  }

  it('delivers each event before the upstream produces the next one', async () => {
    const res = await open('lockstep', 'lock-1');
    expect(res.statusCode).toBe(200);
    res.setEncoding('utf8');
    let buffer = '';
    const received: string[] = [];
    res.on('data', (chunk: string) => {
      buffer += chunk;
      for (let i = buffer.indexOf('\n\n'); i >= 0; i = buffer.indexOf('\n\n')) {
        received.push(buffer.slice(0, i));
        buffer = buffer.slice(i + 2);
        // Let the stream go on only now that this event is here.
        const ack = acks.shift();
        if (ack) ack();
        else
          waiting = () => {
            waiting = undefined;
            acks.shift()?.();
          };
      }
    });
    await new Promise<void>((resolve) => res.on('end', resolve));
    const events = received.map((e) => JSON.parse(e.replace(/^data: /, '')) as GenerateEvent);
    expect(events).toEqual([0, 1, 2, 3, 4].map((i) => ({ worker_output: `t${i} `, request_id: 'lock-1' })));
  });

  it('sends one event per item of a fast stream, in order and exact', async () => {
    const res = await open('fast', 'fast-1');
    res.setEncoding('utf8');
    let text = '';
    res.on('data', (chunk: string) => (text += chunk));
    await new Promise<void>((resolve) => res.on('end', resolve));
    const blocks = text.split('\n\n').filter(Boolean);
    expect(blocks).toHaveLength(3000);
    for (let i = 0; i < blocks.length; i++) {
      expect(blocks[i]).toBe(`data: {"worker_output":"w${i} ","request_id":"fast-1"}`);
    }
  });
});
