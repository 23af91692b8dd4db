/**
 * `least-loaded`: the worker with the least load in blocks (active blocks plus pending prefill
 * tokens / block size); ties go to the fewest queued requests, then to a random one. Ignores caches.
 * @packageDocumentation
 */
import { loadBlocks, randomIndex, type RoutingChoice, type RoutingContext, type RoutingStrategy } from './strategy';

/** See the module comment. */
export class LeastLoadedStrategy implements RoutingStrategy {
  /** Always `'least-loaded'`. */
  readonly name = 'least-loaded';

  /** Picks the least loaded worker. */
  select(ctx: RoutingContext): RoutingChoice {
    let best: number[] = [];
    let bestLoad = Infinity;
    let bestWaiting = Infinity;
    for (let i = 0; i < ctx.count; i++) {
      const load = loadBlocks(ctx, i);
      const waiting = ctx.waiting[i]!;
      if (load < bestLoad || (load === bestLoad && waiting < bestWaiting)) {
        best = [i];
        bestLoad = load;
        bestWaiting = waiting;
      } else if (load === bestLoad && waiting === bestWaiting) best.push(i);
    }
    return { index: best.length === 1 ? best[0]! : best[randomIndex(ctx.random, best.length)]! };
  }
}
