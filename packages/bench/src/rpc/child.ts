/**
 * A process of the rpc bench, driven by its parent over IPC: `child.ts server|client <impl> <url> [runtime]`.
 * A server serves until told to exit and reports its CPU time on request; a client runs the
 * scenarios it is sent, each a warm-up, a `begin` message, a measured window, an `end` message.
 */
import { SCENARIOS, type ScenarioName } from './scenarios';
import { startClient, startServer, type BenchClient, type Impl } from './peers';

type Command =
  | { cmd: 'cpu'; id: number }
  | { cmd: 'run'; scenario: ScenarioName; warmupMs: number; measureMs: number }
  | { cmd: 'exit' };

function send(message: object): void {
  process.send?.(message);
}

function cpuUs(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

/** Runs `op` on `concurrency` loops until `until`; returns the operations and items completed. */
async function drive(
  client: BenchClient,
  scenario: ScenarioName,
  until: number,
): Promise<{ ops: number; items: number }> {
  const s = SCENARIOS[scenario];
  let ops = 0;
  let items = 0;
  const loop = async (): Promise<void> => {
    while (Date.now() < until) {
      if (s.kind === 'unary') {
        await client.unary(s.payload);
        items += 1;
      } else {
        items += await client.stream(s.items);
      }
      ops += 1;
    }
  };
  await Promise.all(Array.from({ length: s.concurrency }, loop));
  return { ops, items };
}

async function main(): Promise<void> {
  // The parent is gone (killed, or its pipe closed): nothing will tell this process to stop.
  process.on('disconnect', () => process.exit(0));
  const [role, impl, url, runtimePath] = process.argv.slice(2) as [string, Impl, string, string | undefined];
  if (role === 'server') {
    const server = await startServer(impl, url, runtimePath || undefined);
    process.on('message', (m: Command) => {
      if (m.cmd === 'cpu') send({ ev: 'cpu', id: m.id, cpuUs: cpuUs() });
      else if (m.cmd === 'exit') void server.close().finally(() => process.exit(0));
    });
    send({ ev: 'ready' });
    return;
  }
  const client = await startClient(impl, url, runtimePath || undefined);
  process.on('message', (m: Command) => {
    if (m.cmd === 'exit') {
      void client.close().finally(() => process.exit(0));
      return;
    }
    if (m.cmd !== 'run') return;
    void (async () => {
      try {
        await drive(client, m.scenario, Date.now() + m.warmupMs);
        send({ ev: 'begin' });
        const cpu0 = cpuUs();
        const t0 = performance.now();
        const r = await drive(client, m.scenario, Date.now() + m.measureMs);
        const wallMs = performance.now() - t0;
        send({ ev: 'end', ops: r.ops, items: r.items, wallMs, cpuUs: cpuUs() - cpu0 });
      } catch (e) {
        send({ ev: 'error', message: (e as Error).message });
      }
    })();
  });
  send({ ev: 'ready', streams: client.streams });
}

main().catch((e: unknown) => {
  send({ ev: 'error', message: (e as Error).message });
  process.exit(1);
});
