/**
 * `round-robin`: each request goes to the next worker in order, ignoring caches and load.
 * @packageDocumentation
 */
import type { RoutingChoice, RoutingContext, RoutingStrategy } from './strategy';

/** See the module comment. The cursor wraps when workers come and go. */
export class RoundRobinStrategy implements RoutingStrategy {
  /** Always `'round-robin'`. */
  readonly name = 'round-robin';
  private cursor = 0;

  /** Picks the next worker. */
  select(ctx: RoutingContext): RoutingChoice {
    const i = this.cursor % ctx.count;
    this.cursor = i + 1;
    return { index: i };
  }
}
