import { InvalidArgumentError } from '@dynamo-ts/runtime';
import type { AnyServiceDefinition, ServiceDefinition } from './service';

/** Which services a process serves, in start order (dependencies first). */
export interface ResolvedGraph {
  root: ServiceDefinition;
  /** Services to start, dependencies before dependents. */
  services: ServiceDefinition[];
  /** Services reached only as dependencies (not linked): served in-process only in embedded mode. */
  dependencyOnly: Set<ServiceDefinition>;
}

/**
 * Resolves what `serve root` starts: the root and every service linked below it, plus, when
 * `includeDependencies` (embedded mode), every service they depend on. Two different services
 * with the same name are an error.
 */
export function resolveGraph(root: AnyServiceDefinition, options: { includeDependencies: boolean }): ResolvedGraph {
  const linked = new Set<ServiceDefinition>();
  const byName = new Map<string, ServiceDefinition>();
  const note = (s: ServiceDefinition): void => {
    const other = byName.get(s.name);
    if (other && other !== s) throw new InvalidArgumentError(`two different services are named ${s.name}`);
    byName.set(s.name, s);
  };
  const walkLinks = (s: ServiceDefinition): void => {
    if (linked.has(s)) return;
    note(s);
    linked.add(s);
    s.links.forEach(walkLinks);
  };
  walkLinks(root);
  const all = new Set(linked);
  const dependencyOnly = new Set<ServiceDefinition>();
  if (options.includeDependencies) {
    const walkDeps = (s: ServiceDefinition): void => {
      for (const d of [...s.dependencies, ...s.links]) {
        if (!all.has(d)) {
          note(d);
          all.add(d);
          dependencyOnly.add(d);
        }
        walkDeps(d);
      }
    };
    const seen = new Set<ServiceDefinition>();
    const guard = (s: ServiceDefinition): void => {
      if (seen.has(s)) return;
      seen.add(s);
      walkDeps(s);
      [...s.dependencies, ...s.links].forEach(guard);
    };
    [...linked].forEach(guard);
  }
  // Dependencies first: depth-first post-order over dependency edges (cycles tolerated).
  const order: ServiceDefinition[] = [];
  const state = new Map<ServiceDefinition, 'visiting' | 'done'>();
  const visit = (s: ServiceDefinition): void => {
    if (state.get(s)) return;
    state.set(s, 'visiting');
    for (const d of s.dependencies) if (all.has(d)) visit(d);
    for (const l of s.links) if (all.has(l)) visit(l);
    state.set(s, 'done');
    order.push(s);
  };
  [...all].forEach(visit);
  return { root, services: order, dependencyOnly };
}
