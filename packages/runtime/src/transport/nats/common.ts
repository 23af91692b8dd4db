import type { Msg, NatsConnection } from '@nats-io/transport-node';
import { ClosedError, type DynamoError, UnavailableError, isDynamoError, toDynamoError } from '../../errors';
import type { Logger } from '../../logger';

/** Receives the messages of one token of a plane's inbox. */
export interface Route {
  onMessage(msg: Msg): void;
}

/** A served request the plane sends heartbeats for. */
export interface HeartbeatTarget {
  heartbeatTick(): void;
}

/** A called stream the plane's watchdog checks for idleness. */
export interface WatchedStream {
  idleTick(ticks: number): void;
  failIfNothingReceived(error: DynamoError): boolean;
  abort(error: DynamoError, surface: boolean): void;
}

/** Work to do at the end of the current turn of the event loop (see {@link PlaneCore.atTurnEnd}). */
export interface TurnEnd {
  turnEnded(): void;
}

/** What the callers and servers of a `NatsRequestPlane` use of it. */
export interface PlaneCore {
  readonly nc: NatsConnection;
  readonly logger: Logger;
  readonly heartbeatTimeoutMs: number;
  readonly streamWindow: number;
  /** Largest request or response item, in bytes (larger than one NATS message: chunked). */
  readonly maxPayload: number;
  /** Largest NATS message: nats-server's `max_payload`. */
  readonly messageLimit: number;
  /** Takes `bytes` of the budget for chunked requests in assembly; false when it is spent. */
  reserveAssembly(bytes: number): boolean;
  releaseAssembly(bytes: number): void;
  /** False once the plane closed. */
  readonly isOpen: boolean;
  /** Allocates an inbox token routed to `route`; returns the full subject `P.<token>`. */
  register(route: Route): { token: string; subject: string };
  unregister(token: string): void;
  watch(stream: WatchedStream): void;
  unwatch(stream: WatchedStream): void;
  addServed(r: HeartbeatTarget): void;
  removeServed(r: HeartbeatTarget): void;
  /** Throws CLOSED unless the plane may send requests. */
  checkCallable(): void;
  /**
   * Runs `work.turnEnded()` once at the end of this turn of the event loop: one `setImmediate`
   * per plane and turn, however many requests wait for it.
   */
  atTurnEnd(work: TurnEnd): void;
}

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** True for a `503` status message: the server found nobody subscribed on the subject. */
export function isNoResponders(msg: Msg): boolean {
  return msg.data.length === 0 && msg.headers?.code === 503;
}

/** Byte size of `text` in UTF-8 plus `extra`, counted only when it may exceed `limit`. */
export function exceeds(text: string, extra: number, limit: number): number | undefined {
  if (text.length * 3 + extra <= limit) return undefined;
  const size = Buffer.byteLength(text, 'utf8') + extra;
  return size > limit ? size : undefined;
}

/** Maps an error of the NATS client to a dynamo-ts error. */
export function toNatsError(e: unknown, what: string): DynamoError {
  if (isDynamoError(e)) return toDynamoError(e);
  const name = e instanceof Error ? e.name : '';
  const msg = errorMessage(e);
  if (name === 'ClosedConnectionError' || /closed/i.test(msg))
    return new ClosedError(`${what}: NATS connection closed`, { cause: e });
  return new UnavailableError(`${what}: ${msg}`, { cause: e });
}
