import { Registry } from 'prom-client';
import { startFrontend, type GenerateEvent } from '@dynamo-ts/frontend';

/**
 * An in-process upstream answers every read at once (promise jobs only): without the frontend
 * yielding, one long answer ran start to end with no event-loop turn, every other request waiting.
 */
describe('one long answer does not hold the event loop', () => {
  it('lets timers and other requests run while it streams', async () => {
    let started!: () => void;
    const longStarted = new Promise<void>((r) => (started = r));
    let streaming = false;
    const server = await startFrontend({
      port: 0,
      host: '127.0.0.1',
      registry: new Registry(),
      generate: (req) =>
        (async function* () {
          const n = req.prompt === 'long' ? 300_000 : 1;
          if (n > 1) {
            streaming = true;
            started();
          }
          for (let i = 0; i < n; i++) yield { worker_output: 'x', completion_tokens: 1 } as GenerateEvent;
        })(),
    });
    try {
      let turns = 0;
      let longDone = false;
      const timer = setInterval(() => {
        if (streaming && !longDone) turns++;
      }, 1);
      const post = (prompt: string) =>
        fetch(`${server.url}/generate`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ prompt }),
        }).then((r) => r.json() as Promise<{ worker_output: string }>);
      const long = post('long').then((r) => {
        longDone = true;
        return r;
      });
      // Small requests sent once the long one streams are answered before it ends.
      await longStarted;
      let smallBeforeLong = 0;
      for (let i = 0; i < 3; i++) {
        await post('short');
        if (!longDone) smallBeforeLong++;
      }
      expect((await long).worker_output).toHaveLength(300_000);
      clearInterval(timer);
      expect(turns).toBeGreaterThan(1);
      expect(smallBeforeLong).toBeGreaterThan(0);
    } finally {
      await server.close();
    }
  }, 30_000);
});
