/**
 * Case (c) of the request-path benchmark: bare NATS request/reply, no dynamo-ts code.
 *
 *   node --import tsx nats-chain.ts <nats-url> <prefix> front    serves <prefix>.echo (one hop),
 *        <prefix>.processor (asks <prefix>.router, then <prefix>.worker, then answers) and <prefix>.router
 *   node --import tsx nats-chain.ts <nats-url> <prefix> worker   serves <prefix>.worker
 *
 * A client requesting `<prefix>.processor` thus crosses three request/reply hops, as a
 * `/generate` of the distributed graph does (frontend -> processor, processor -> router,
 * processor -> worker), with the worker in another process. Prints `{"ready": true}` on IPC.
 */
import { connect } from '@nats-io/transport-node';

async function main(): Promise<void> {
  const [url, prefix, role] = process.argv.slice(2);
  if (!url || !prefix || (role !== 'front' && role !== 'worker')) {
    throw new Error('usage: nats-chain.ts <nats-url> <prefix> front|worker');
  }
  const nc = await connect({ servers: url, name: `bench-${role}` });
  const enc = new TextEncoder();
  const dec = new TextDecoder();
  if (role === 'worker') {
    nc.subscribe(`${prefix}.worker`, {
      callback: (_e, m) => {
        const req = JSON.parse(dec.decode(m.data)) as { token_ids: number[] };
        m.respond(enc.encode(JSON.stringify({ token_ids: req.token_ids })));
      },
    });
  } else {
    nc.subscribe(`${prefix}.echo`, {
      callback: (_e, m) => {
        m.respond(m.data);
      },
    });
    nc.subscribe(`${prefix}.router`, {
      callback: (_e, m) => {
        m.respond(enc.encode(JSON.stringify({ worker_id: 'w0', overlap_blocks: 0 })));
      },
    });
    nc.subscribe(`${prefix}.processor`, {
      callback: (_e, m) => {
        void (async () => {
          const req = JSON.parse(dec.decode(m.data)) as { prompt: string; request_id: string };
          const tokens = Array.from(req.prompt, (c) => c.charCodeAt(0));
          await nc.request(`${prefix}.router`, enc.encode(JSON.stringify({ token_ids: tokens })), { timeout: 5000 });
          const w = await nc.request(`${prefix}.worker`, enc.encode(JSON.stringify({ token_ids: tokens })), {
            timeout: 5000,
          });
          const out = JSON.parse(dec.decode(w.data)) as { token_ids: number[] };
          const text = String.fromCharCode(...out.token_ids) + '_GeneratedBy_bare';
          m.respond(enc.encode(JSON.stringify({ worker_output: text, request_id: req.request_id })));
        })().catch(() => {
          m.respond(enc.encode('{"error":"chain failed"}'));
        });
      },
    });
  }
  await nc.flush();
  process.send?.({ ready: true });
  process.on('message', (msg: { type?: string }) => {
    if (msg?.type === 'stop') void nc.drain().then(() => process.exit(0));
  });
}

main().catch((e: Error) => {
  process.stderr.write(`nats-chain: ${e.message}\n`);
  process.exit(1);
});
