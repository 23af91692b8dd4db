import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { InvalidArgumentError, NotFoundError } from '@dynamo-ts/runtime';
import { isServiceDefinition, type ServiceDefinition } from './service';

const EXTENSIONS = ['', '.ts', '.js', '.cjs', '/index.ts', '/index.js'];
let tsxRegistered = false;

/** Splits `path/to/module:Service` (the service part is required). */
export function parseTarget(target: string): { modulePath: string; exportName: string } {
  const i = target.lastIndexOf(':');
  if (i <= 0 || i === target.length - 1) {
    throw new InvalidArgumentError(
      `target ${JSON.stringify(target)} must be <module>:<Service>, e.g. components/graph:Frontend`,
    );
  }
  return { modulePath: target.slice(0, i), exportName: target.slice(i + 1) };
}

/** Resolves a module path (extension optional) against `cwd`. */
export function resolveModule(modulePath: string, cwd: string): string {
  const base = path.resolve(cwd, modulePath);
  for (const ext of EXTENSIONS) {
    const p = base + ext;
    if (existsSync(p) && !p.endsWith(path.sep)) {
      try {
        if (statSync(p).isFile()) return p;
      } catch {
        /* next */
      }
    }
  }
  throw new NotFoundError(`module ${modulePath} not found (looked for ${EXTENSIONS.map((e) => base + e).join(', ')})`);
}

/** tsx (an optional peer dependency) compiles TypeScript modules as they load. */
function registerTsx(file: string): void {
  let tsx: { register(): void };
  try {
    tsx = require('tsx/cjs/api') as { register(): void };
  } catch (e) {
    if ((e as { code?: string }).code !== 'MODULE_NOT_FOUND') throw e;
    throw new InvalidArgumentError(
      `${file} is TypeScript: install tsx to load it (npm install tsx), or point at the compiled JavaScript`,
    );
  }
  tsx.register();
}

/**
 * Loads `<module>:<Service>` (TypeScript through tsx, or JavaScript) and returns the service
 * definition it exports under that name.
 */
export function loadService(target: string, cwd = process.cwd()): ServiceDefinition {
  const { exportName } = parseTarget(target);
  const { file, mod } = loadModule(target, cwd);
  const svc = mod[exportName];
  if (!isServiceDefinition(svc)) {
    const found = Object.entries(mod)
      .filter(([, v]) => isServiceDefinition(v))
      .map(([k]) => k);
    throw new NotFoundError(
      `${file} exports no service named ${exportName}` + (found.length ? ` (it exports: ${found.join(', ')})` : ''),
    );
  }
  return svc;
}

function loadModule(target: string, cwd: string): { file: string; mod: Record<string, unknown> } {
  const file = resolveModule(parseTarget(target).modulePath, cwd);
  if (/\.[cm]?tsx?$/.test(file) && !tsxRegistered) {
    registerTsx(file);
    tsxRegistered = true;
  }
  return { file, mod: require(file) as Record<string, unknown> };
}

/**
 * Names of every service the module of `target` exports and every service they link to or
 * depend on: the sections a config file shared by the graph's processes may hold.
 */
export function moduleServiceNames(target: string, cwd = process.cwd()): string[] {
  const names = new Set<string>();
  const seen = new Set<ServiceDefinition>();
  const walk = (s: ServiceDefinition): void => {
    if (seen.has(s)) return;
    seen.add(s);
    names.add(s.name);
    [...s.links, ...s.dependencies].forEach(walk);
  };
  for (const v of Object.values(loadModule(target, cwd).mod)) if (isServiceDefinition(v)) walk(v);
  return [...names];
}
