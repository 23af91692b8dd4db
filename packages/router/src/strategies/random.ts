/**
 * `random`: a uniformly random worker.
 * @packageDocumentation
 */
import { randomIndex, type RoutingChoice, type RoutingContext, type RoutingStrategy } from './strategy';

/** See the module comment. */
export class RandomStrategy implements RoutingStrategy {
  /** Always `'random'`. */
  readonly name = 'random';

  /** Picks a worker uniformly with `ctx.random`. */
  select(ctx: RoutingContext): RoutingChoice {
    return { index: randomIndex(ctx.random, ctx.count) };
  }
}
