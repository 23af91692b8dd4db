#!/usr/bin/env node
/**
 * The `dynamo-ts` command line: `serve` a graph or one service of it; `bench` the router.
 * The only place (with the example) that reads process.env and installs signal handlers.
 */
import yargs from 'yargs';
import { InvalidArgumentError, isDynamoError } from '@dynamo-ts/runtime';
import { runServe, splitOverrides } from './serve-command';
import { registerBenchCommands } from './bench-command';

function fail(e: unknown): never {
  const msg = isDynamoError(e) || e instanceof Error ? e.message : String(e);
  process.stderr.write(`dynamo-ts: error: ${msg}\n`);
  process.exit(isDynamoError(e) && (e.code === 'INVALID_ARGUMENT' || e.code === 'NOT_FOUND') ? 2 : 1);
}

const SERVE_FLAGS = new Set(['target', 'f', 'file', 'drain-timeout', 'drainTimeout', 'help', 'version']);

/** `model ...` and `bench engines` live in @dynamo-ts/llamacpp, loaded only when asked for. */
const LLAMACPP_CLI = '@dynamo-ts/llamacpp/cli';

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args[0] === 'model' || (args[0] === 'bench' && args[1] === 'engines')) {
    const m = (await import(LLAMACPP_CLI)) as { runLlamaCppCli(a: string[], f: typeof fail): Promise<void> };
    return m.runLlamaCppCli(args, fail);
  }
  let cli = yargs(process.argv.slice(2))
    .scriptName('dynamo-ts')
    .parserConfiguration({ 'camel-case-expansion': false, 'dot-notation': true })
    .command(
      'serve <target>',
      'serve a service and the services linked below it (embedded when NATS_SERVER and ETCD_ENDPOINTS are unset)',
      (y) =>
        y
          .positional('target', {
            type: 'string',
            describe: '<module>:<Service>, e.g. components/graph:Frontend',
            demandOption: true,
          })
          .option('f', {
            alias: 'file',
            type: 'string',
            array: true,
            describe: 'YAML config file(s), one section per service',
          })
          .option('drain-timeout', {
            type: 'number',
            default: 30,
            describe: 'seconds in-flight work may take to finish on SIGINT/SIGTERM',
          })
          .epilog('Override any config key with --Service.key=value, e.g. --DummyWorker.token_delay_ms=20'),
      async (argv) => {
        try {
          const drain = argv['drain-timeout'];
          if (typeof drain !== 'number' || !Number.isFinite(drain) || drain < 0) {
            throw new InvalidArgumentError(`--drain-timeout must be a number of seconds >= 0`);
          }
          await runServe({
            target: String(argv.target),
            file: argv.f as string[] | undefined,
            overrides: splitOverrides(argv as Record<string, unknown>, SERVE_FLAGS),
            drainTimeout: drain,
          });
        } catch (e) {
          fail(e);
        }
      },
    );
  cli = registerBenchCommands(cli, fail);
  await cli
    .demandCommand(1, 'name a command: serve or bench')
    .strictCommands()
    .help()
    .fail((msg, err) => fail(err ?? new Error(msg)))
    .parseAsync();
}

main().catch(fail);
