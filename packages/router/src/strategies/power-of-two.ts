/**
 * `power-of-two`: samples two distinct workers at random and takes the less loaded (load as in
 * `least-loaded`; ties: fewer queued requests, then the first sampled). Nearly as balanced as
 * least-loaded, without herding onto one worker when several routers share stale load figures.
 * @packageDocumentation
 */
import { loadBlocks, randomIndex, type RoutingChoice, type RoutingContext, type RoutingStrategy } from './strategy';

/** See the module comment. */
export class PowerOfTwoStrategy implements RoutingStrategy {
  /** Always `'power-of-two'`. */
  readonly name = 'power-of-two';

  /** Picks the less loaded of two random workers. */
  select(ctx: RoutingContext): RoutingChoice {
    const n = ctx.count;
    if (n === 1) return { index: 0 };
    const a = randomIndex(ctx.random, n);
    let b = randomIndex(ctx.random, n - 1);
    if (b >= a) b++;
    const la = loadBlocks(ctx, a);
    const lb = loadBlocks(ctx, b);
    if (lb < la || (lb === la && ctx.waiting[b]! < ctx.waiting[a]!)) return { index: b };
    return { index: a };
  }
}
