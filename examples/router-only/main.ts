import { startRouterOnly } from './server';

/** `npx tsx examples/router-only/main.ts --engine=http://h:8000,tcp://h:5557[,tcp://h:5558] ... [--block-size=16] [--port=8080]` */
const args = process.argv.slice(2);
const arg = (k: string) => args.filter((a) => a.startsWith(`--${k}=`)).map((a) => a.slice(k.length + 3));
const usage = (m: string): never => (process.stderr.write(`router-only: ${m}\n`), process.exit(2));
const engines = arg('engine').map((e) => {
  const [url, kvEvents, kvReplay] = e.split(',');
  if (!url || !kvEvents) usage(`--engine=URL,KV_EVENTS[,KV_REPLAY] expected, got ${e}`);
  return { url: url!, kvEvents: kvEvents!, kvReplay };
});
if (engines.length === 0) usage('at least one --engine=URL,KV_EVENTS[,KV_REPLAY] is required');
const blockSize = Number(arg('block-size')[0] ?? 16);
const port = Number(arg('port')[0] ?? 8080);
if (!(Number.isInteger(blockSize) && blockSize > 0)) usage('--block-size must be a positive integer');
if (!(Number.isInteger(port) && port >= 0 && port < 65536)) usage('--port must be 0..65535');
const line = (level: string) => (message: string, fields?: Record<string, unknown>) =>
  void process.stderr.write(JSON.stringify({ level, message, ...fields }) + '\n');
const logger = { error: line('error'), warn: line('warn'), info: line('info'), debug: () => undefined };
startRouterOnly({ engines, blockSize, port, host: '0.0.0.0', logger }).then(
  (s) => logger.info('router-only listening', { url: s.url }),
  (e: Error) => usage(e.message),
);
