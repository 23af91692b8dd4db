/**
 * `@dynamo-ts/bench` (private, never published): the benchmarks behind `dynamo-ts bench`, which
 * the sdk's CLI loads from here only when `bench` is the command.
 * @packageDocumentation
 */
export { benchCommands, BENCH_NAMES } from './cli/bench-command';
export { progressBar } from './cli/progress';
