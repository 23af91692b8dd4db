/**
 * Small types shared by the router's parts.
 * @packageDocumentation
 */

/**
 * Receives the router's warnings (event gaps, unknown parents, stale events...). The router has no
 * logger dependency: pass e.g. `(msg, fields) => logger.warn(msg, fields)`.
 */
export type WarningHandler = (message: string, fields: Record<string, unknown>) => void;

/** A clock in milliseconds (e.g. `Date.now`); injected so tests are deterministic. */
export type Clock = () => number;

/** A uniform random source in [0, 1) (e.g. `Math.random`); injected so tests are deterministic. */
export type RandomSource = () => number;

/** Ignores warnings. */
export const ignoreWarnings: WarningHandler = () => undefined;
