/**
 * The built-in routing strategies and their factory.
 * @packageDocumentation
 */
import { RouterInvalidArgumentError } from '../errors';
import { KvScheduler, type KvSchedulerOptions } from '../scheduler';
import { LeastLoadedStrategy } from './least-loaded';
import { PowerOfTwoStrategy } from './power-of-two';
import { RandomStrategy } from './random';
import { RoundRobinStrategy } from './round-robin';
import { STRATEGY_NAMES, type RoutingStrategy, type StrategyName } from './strategy';

export * from './strategy';
export { LeastLoadedStrategy } from './least-loaded';
export { PowerOfTwoStrategy } from './power-of-two';
export { RandomStrategy } from './random';
export { RoundRobinStrategy } from './round-robin';

/** Options of {@link createStrategy}: the `kv` scheduler's. */
export type StrategyOptions = KvSchedulerOptions;

/**
 * Creates a built-in strategy by name.
 * @throws RouterInvalidArgumentError for an unknown name or invalid options
 */
export function createStrategy(name: StrategyName, options: StrategyOptions = {}): RoutingStrategy {
  switch (name) {
    case 'kv':
      return new KvScheduler({ ...kvOnly(options), preset: options.preset ?? 'ttft' });
    case 'round-robin':
      return new RoundRobinStrategy();
    case 'random':
      return new RandomStrategy();
    case 'least-loaded':
      return new LeastLoadedStrategy();
    case 'power-of-two':
      return new PowerOfTwoStrategy();
    default:
      throw new RouterInvalidArgumentError(
        `unknown routing strategy ${JSON.stringify(name)}; expected one of ${STRATEGY_NAMES.join(', ')}`,
      );
  }
}

function kvOnly(o: StrategyOptions): KvSchedulerOptions {
  const out: KvSchedulerOptions = {};
  for (const k of [
    'overlapWeight',
    'temperature',
    'inflightOverlap',
    'queueWeight',
    'memoryWeight',
    'memoryBlocks',
    'objective',
    'workWeight',
    'maxDelayed',
    'engineProfile',
  ] as const) {
    if (o[k] !== undefined) (out as Record<string, unknown>)[k] = o[k];
  }
  return out;
}

/** Whether `name` is a strategy name {@link createStrategy} accepts. */
export function isStrategyName(name: unknown): name is StrategyName {
  return typeof name === 'string' && (STRATEGY_NAMES as readonly string[]).includes(name);
}
