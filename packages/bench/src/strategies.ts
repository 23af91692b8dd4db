/**
 * The strategies a benchmark can name: the router's own plus the re-implemented policies of other
 * routers (`policies/`), which are comparison baselines and so live here rather than in
 * `@dynamo-ts/router`. Same names and shapes as the router's factory, extended.
 * @packageDocumentation
 */
import {
  createStrategy as createRouterStrategy,
  isStrategyName as isRouterStrategyName,
  RouterInvalidArgumentError,
  STRATEGY_NAMES,
  type RoutingStrategy,
  type StrategyName as RouterStrategyName,
  type StrategyOptions as RouterStrategyOptions,
} from '@dynamo-ts/router';
import {
  LlmdScorersPolicy,
  SglangCacheAwarePolicy,
  VllmPrefixAwarePolicy,
  type LlmdScorersOptions,
  type SglangCacheAwareOptions,
  type VllmPrefixAwareOptions,
} from './policies/index';

/**
 * Names of the re-implemented policies: SGLang's cache_aware, vLLM production-stack's prefixaware,
 * llm-d's weighted scorers.
 */
export type PeerPolicyName = 'sglang-cache-aware' | 'vllm-prefix-aware' | 'llm-d-scorers';

/** A strategy a benchmark can name: the router's or a peer policy. */
export type StrategyName = RouterStrategyName | PeerPolicyName;

/** The peer policy names. */
export const PEER_POLICY_NAMES: readonly PeerPolicyName[] = [
  'sglang-cache-aware',
  'vllm-prefix-aware',
  'llm-d-scorers',
];

/** Every name {@link createStrategy} accepts: the router's strategies, then the peer policies. */
export const ALL_STRATEGY_NAMES: readonly StrategyName[] = [...STRATEGY_NAMES, ...PEER_POLICY_NAMES];

/** The router's `kv` options at the top level, each peer policy's under its name. */
export type StrategyOptions = RouterStrategyOptions & {
  sglang?: SglangCacheAwareOptions;
  vllm?: VllmPrefixAwareOptions;
  llmd?: LlmdScorersOptions;
};

/** Whether `name` is a router strategy or a peer policy name. */
export function isStrategyName(name: unknown): name is StrategyName {
  return typeof name === 'string' && (ALL_STRATEGY_NAMES as readonly string[]).includes(name);
}

/**
 * Creates a strategy by name: a peer policy here, anything else by the router's factory.
 * @throws RouterInvalidArgumentError for an unknown name or invalid options
 */
export function createStrategy(name: StrategyName, options: StrategyOptions = {}): RoutingStrategy {
  switch (name) {
    case 'sglang-cache-aware':
      return new SglangCacheAwarePolicy(options.sglang);
    case 'vllm-prefix-aware':
      return new VllmPrefixAwarePolicy(options.vllm);
    case 'llm-d-scorers':
      return new LlmdScorersPolicy(options.llmd);
    default: {
      if (!isRouterStrategyName(name)) {
        throw new RouterInvalidArgumentError(
          `unknown routing strategy ${JSON.stringify(name)}; expected one of ${ALL_STRATEGY_NAMES.join(', ')}`,
        );
      }
      const { sglang: _s, vllm: _v, llmd: _l, ...kv } = options;
      return createRouterStrategy(name, kv);
    }
  }
}
