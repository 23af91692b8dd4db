import type { Argv } from 'yargs';

/** Adds the `bench` commands. */
export function registerBenchCommands<T>(cli: Argv<T>, _fail: (e: unknown) => never): Argv<T> {
  return cli;
}
