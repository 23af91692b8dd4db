import { writeFileSync } from 'node:fs';
import type { Argv, CommandModule } from 'yargs';
import { compileHttpBenchOptions, formatHttpBenchTable, HTTP_BENCH_ROUTES, runHttpBench } from '../http-bench';
import { progressBar } from './progress';

/** Flags of `dynamo-ts bench http`. */
interface BenchHttpArgs {
  url?: string;
  concurrency?: number;
  duration?: number;
  requests?: number;
  route?: string;
  stream?: boolean;
  prompt?: string;
  model?: string;
  'max-tokens'?: number;
  'timeout-ms'?: number;
  json?: string;
}

/**
 * `dynamo-ts bench http --url URL [--concurrency C] [--duration S] [--route generate|chat|completions]
 * [--stream] [--json FILE]`: closed-loop load against a running frontend; prints requests/s, TTFT
 * and end-to-end p50/p99 (progress on standard error, the table on standard output).
 */
export function benchHttpCommand<T>(fail: (e: unknown) => never): CommandModule<T, BenchHttpArgs> {
  return {
    command: 'http',
    describe: 'load a running frontend (/generate or the OpenAI routes): requests/s, TTFT and end-to-end latency',
    builder: (b: Argv<T>) =>
      b
        .option('url', { type: 'string', describe: 'frontend base URL, e.g. http://127.0.0.1:8000' })
        .option('concurrency', { type: 'number', default: 8, describe: 'concurrent clients (closed loop)' })
        .option('duration', { type: 'number', default: 10, describe: 'seconds' })
        .option('requests', { type: 'number', describe: 'stop after this many requests' })
        .option('route', { type: 'string', default: 'generate', choices: HTTP_BENCH_ROUTES as string[] })
        .option('stream', { type: 'boolean', default: false, describe: 'ask for Server-Sent Events' })
        .option('prompt', { type: 'string', describe: 'prompt of every request (default "Tell me a joke")' })
        .option('model', { type: 'string', describe: 'model name on the OpenAI routes (default hello-world)' })
        .option('max-tokens', { type: 'number', describe: 'max_tokens on the OpenAI routes' })
        .option('timeout-ms', { type: 'number', describe: 'a request slower than this counts as an error' })
        .option('json', {
          type: 'string',
          describe: 'write the result as JSON to this file',
        }) as unknown as Argv<BenchHttpArgs>,
    handler: async (argv) => {
      try {
        const options = compileHttpBenchOptions({
          url: argv.url,
          concurrency: argv.concurrency,
          duration: argv.duration,
          requests: argv.requests,
          route: argv.route,
          stream: argv.stream,
          prompt: argv.prompt,
          model: argv.model,
          maxTokens: argv['max-tokens'],
          timeoutMs: argv['timeout-ms'],
        });
        const bar = progressBar();
        const result = await runHttpBench(options, {
          onProgress: (elapsed, total) => bar.update('load', Math.round(elapsed), Math.round(total)),
        });
        bar.stop();
        process.stdout.write(formatHttpBenchTable(result) + '\n');
        if (argv.json) writeFileSync(argv.json, JSON.stringify(result, null, 2) + '\n');
        if (result.requests === 0) throw new Error(`no request succeeded against ${options.url}`);
      } catch (e) {
        fail(e);
      }
    },
  };
}
