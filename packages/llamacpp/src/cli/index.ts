/**
 * The llama.cpp commands of the `dynamo-ts` CLI (loaded only when asked for):
 * `model tiny OUT.gguf [--seed N]`, `bench engines --model FILE.gguf ...` and
 * `bench handover --model FILE.gguf ...`.
 * @packageDocumentation
 */
import { writeFileSync } from 'node:fs';
import cliProgress from 'cli-progress';
import yargs from 'yargs';
import { STRATEGY_NAMES, type StrategyName } from '@dynamo-ts/router';
import { InvalidArgumentError } from '@dynamo-ts/runtime';
import { tinyModel } from '../tiny-model';
import { checkModelFile } from '../worker';
import { formatEnginesTable, runEnginesBench } from './bench-engines';
import { formatHandoverTable, runHandoverBench } from './bench-handover';

function intFlag(name: string, v: unknown, min = 1): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min)
    throw new InvalidArgumentError(`--${name} must be an integer >= ${min}, got ${String(v)}`);
  return v;
}

/** Runs `args` (the words after `dynamo-ts`); errors go to `fail`. */
export async function runLlamaCppCli(args: string[], fail: (e: unknown) => never): Promise<void> {
  await yargs(args)
    .scriptName('dynamo-ts')
    .command(
      'model tiny <out>',
      'write a tiny deterministic llama GGUF (random weights, real tokenizer vocabulary) for tests',
      (y) =>
        y
          .positional('out', { type: 'string', demandOption: true, describe: 'the .gguf file to write' })
          .option('seed', { type: 'number', default: 1, describe: 'seed of the random weights' })
          .option('layers', { type: 'number', default: 2, describe: 'transformer layers' })
          .option('embedding', { type: 'number', default: 64, describe: 'embedding width (a multiple of 4)' }),
      (argv) => {
        try {
          const seed = intFlag('seed', argv.seed, 0);
          if (seed > 0xffffffff) throw new InvalidArgumentError(`--seed must be below 2^32, got ${seed}`);
          const layers = intFlag('layers', argv.layers);
          const embedding = intFlag('embedding', argv.embedding, 4);
          if (layers > 64) throw new InvalidArgumentError(`--layers must be at most 64, got ${layers}`);
          if (embedding % 4 || embedding > 2048)
            throw new InvalidArgumentError(`--embedding must be a multiple of 4 up to 2048, got ${embedding}`);
          const bytes = tinyModel({ seed, layers, embedding });
          try {
            writeFileSync(String(argv.out), bytes);
          } catch (e) {
            throw new InvalidArgumentError(`OUT ${String(argv.out)}: cannot write (${(e as Error).message})`);
          }
          process.stdout.write(`wrote ${String(argv.out)} (${bytes.length} bytes, seed ${seed})\n`);
        } catch (e) {
          fail(e);
        }
      },
    )
    .command('bench', 'benchmarks on real llama.cpp engines: engines, handover', (b) =>
      b
        .command(
          'engines',
          'real llama.cpp engines behind the KV router: a shared-prefix multi-turn workload per strategy',
          (y) =>
            y
              .option('model', { type: 'string', describe: 'GGUF model file' })
              .option('workers', { type: 'number', default: 2 })
              .option('strategies', { type: 'string', default: 'kv,round-robin' })
              .option('sessions', { type: 'number', default: 16 })
              .option('turns', { type: 'number', default: 3 })
              .option('prefix-groups', { type: 'number', default: 4 })
              .option('prefix-words', { type: 'number', default: 1500 })
              .option('output-tokens', { type: 'number', default: 16 })
              .option('concurrency', { type: 'number', default: 4 })
              .option('slots', { type: 'number', default: 2 })
              .option('block-size', { type: 'number', default: 16 })
              .option('seed', { type: 'number', default: 1 })
              .option('json', { type: 'string', describe: 'write the results as JSON to this file' }),
          async (argv) => {
            try {
              const model = checkModelFile(argv.model ?? '', '--model');
              const strategies = String(argv.strategies)
                .split(',')
                .map((s) => s.trim())
                .filter(Boolean);
              for (const s of strategies)
                if (!(STRATEGY_NAMES as readonly string[]).includes(s))
                  throw new InvalidArgumentError(
                    `--strategies: unknown strategy ${s} (one of ${STRATEGY_NAMES.join(', ')})`,
                  );
              if (!strategies.length) throw new InvalidArgumentError('--strategies: name at least one');
              const bar = new cliProgress.SingleBar(
                { format: '{phase} [{bar}] {value}/{total}', stream: process.stderr },
                cliProgress.Presets.shades_classic,
              );
              let phase = '';
              const results = await runEnginesBench({
                model,
                workers: intFlag('workers', argv.workers),
                strategies: strategies as StrategyName[],
                sessions: intFlag('sessions', argv.sessions),
                turns: intFlag('turns', argv.turns),
                prefixGroups: intFlag('prefix-groups', argv['prefix-groups']),
                prefixWords: intFlag('prefix-words', argv['prefix-words']),
                outputTokens: intFlag('output-tokens', argv['output-tokens']),
                concurrency: intFlag('concurrency', argv.concurrency),
                slots: intFlag('slots', argv.slots),
                blockSize: intFlag('block-size', argv['block-size']),
                seed: intFlag('seed', argv.seed, 0),
                onProgress(strategy, done, total) {
                  if (strategy !== phase) {
                    if (phase) bar.stop();
                    phase = strategy;
                    bar.start(total, done, { phase: strategy.padEnd(12) });
                  } else bar.update(done);
                },
              });
              if (phase) bar.stop();
              process.stdout.write(formatEnginesTable(results) + '\n');
              if (argv.json) writeFileSync(argv.json, JSON.stringify(results, null, 2) + '\n');
            } catch (e) {
              fail(e);
            }
          },
        )
        .command(
          'handover',
          'disaggregated prefill on real engines: the decode engine evaluating the prompt again vs loading the KV state',
          (y) =>
            y
              .option('model', { type: 'string', describe: 'GGUF model file' })
              .option('requests', { type: 'number', default: 8 })
              .option('prompt-words', { type: 'number', default: 1500 })
              .option('output-tokens', { type: 'number', default: 8 })
              .option('seed', { type: 'number', default: 1 })
              .option('json', { type: 'string', describe: 'write the results as JSON to this file' }),
          async (argv) => {
            try {
              const model = checkModelFile(argv.model ?? '', '--model');
              const bar = new cliProgress.SingleBar(
                { format: 'handover off/on [{bar}] {value}/{total}', stream: process.stderr },
                cliProgress.Presets.shades_classic,
              );
              let started = false;
              const results = await runHandoverBench({
                model,
                requests: intFlag('requests', argv.requests),
                promptWords: intFlag('prompt-words', argv['prompt-words']),
                outputTokens: intFlag('output-tokens', argv['output-tokens']),
                seed: intFlag('seed', argv.seed, 0),
                onProgress(done, total) {
                  if (!started) bar.start(total, done);
                  else bar.update(done);
                  started = true;
                },
              });
              if (started) bar.stop();
              process.stdout.write(formatHandoverTable(results) + '\n');
              if (argv.json) writeFileSync(argv.json, JSON.stringify(results, null, 2) + '\n');
            } catch (e) {
              fail(e);
            }
          },
        )
        .demandCommand(1, 'bench: name a benchmark (engines, handover)'),
    )
    .strict()
    .help()
    .fail((msg, err) => fail(err ?? new InvalidArgumentError(msg)))
    .parseAsync();
}
