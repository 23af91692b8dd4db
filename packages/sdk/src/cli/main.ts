#!/usr/bin/env node
/**
 * The `dynamo-ts` command line: `serve` a graph or one service of it; `bench` (from
 * `@dynamo-ts/bench`, loaded only when `bench` is the command, so `serve` never loads it).
 * The only place (with the example) that reads process.env and installs signal handlers.
 * Exit codes: {@link EXIT} (docs/cli.md has the table).
 */
import yargs, { type Argv } from 'yargs';
import { InvalidArgumentError } from '@dynamo-ts/runtime';
import { runServe, splitOverrides } from './serve-command';
import { fail, ignoreBrokenPipes } from './exit';

const SERVE_FLAGS = new Set(['target', 'f', 'file', 'drain-timeout', 'drainTimeout', 'help', 'version']);

/** What `@dynamo-ts/bench` gives the CLI. */
interface BenchModule {
  benchCommands<T>(y: Argv<T>, fail: (e: unknown) => never): Argv<T>;
}

/** `@dynamo-ts/bench`, a private package of the repository: a clear usage error where it is not installed. */
function loadBench(): BenchModule {
  const name = '@dynamo-ts/bench';
  try {
    return require(name) as BenchModule;
  } catch (e) {
    const err = e as { code?: string; message?: string };
    if (err.code === 'MODULE_NOT_FOUND' && String(err.message).includes(name)) {
      throw new InvalidArgumentError(
        `dynamo-ts bench needs ${name}, which is not published: run it from a clone of the dynamo-ts repository (npm ci && npm run build)`,
      );
    }
    throw e;
  }
}

/** `model ...`, `bench engines` and `bench handover` live in @dynamo-ts/llamacpp, loaded only when asked for. */
const LLAMACPP_CLI = '@dynamo-ts/llamacpp/cli';

async function main(): Promise<void> {
  ignoreBrokenPipes();
  const args = process.argv.slice(2);
  if (args[0] === 'model' || (args[0] === 'bench' && (args[1] === 'engines' || args[1] === 'handover'))) {
    const m = (await import(LLAMACPP_CLI)) as { runLlamaCppCli(a: string[], f: typeof fail): Promise<void> };
    return m.runLlamaCppCli(args, fail);
  }
  await yargs(args)
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
    )
    .command(
      'bench',
      'run a benchmark: router, routing or http (in the dynamo-ts repository), or engines, handover (@dynamo-ts/llamacpp)',
      (y) => loadBench().benchCommands(y, fail),
    )
    .demandCommand(1, 'name a command: serve or bench')
    .strictCommands()
    .help()
    .fail((msg, err) => fail(err ?? new InvalidArgumentError(msg)))
    .parseAsync();
}

main().catch(fail);
