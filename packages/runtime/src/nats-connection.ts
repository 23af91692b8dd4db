import { connect, type NatsConnection } from '@nats-io/transport-node';
import { InvalidArgumentError, UnavailableError } from './errors';
import type { Logger } from './logger';
import { noopLogger } from './logger';

/** Options of {@link connectNats}. */
export interface ConnectNatsOptions {
  /** Server URLs (`nats://127.0.0.1:4222`), or one URL / a comma-separated list. */
  servers: string | string[];
  /** Client name shown by the server's monitoring (`/connz`). */
  name?: string;
  /** Logs connection events (disconnect, reconnect, errors) with `component: "nats"`. Default: none. */
  logger?: Logger;
  /** Base wait between reconnect attempts. Default 1000 ms. */
  reconnectTimeWaitMs?: number;
  /** Random extra wait, up to this, added to each reconnect wait (spreads a herd). Default 500 ms. */
  reconnectJitterMs?: number;
  /** Give up the first connection after this long. Default 5000 ms. */
  timeoutMs?: number;
  /**
   * Keep trying the first connection forever instead of failing when no server answers
   * (the returned promise resolves once one does). Default false: fail fast at startup.
   */
  waitOnFirstConnect?: boolean;
  /** Client pings every this many ms to detect a dead server. Default 30000 ms. */
  pingIntervalMs?: number;
  /** Unanswered pings before the connection counts as stale and is re-established. Default 2. */
  maxPingOut?: number;
}

/**
 * Connects to NATS with the settings every dynamo-ts process wants: reconnect forever (with
 * a jittered wait, re-establishing the subscriptions), and every connection event logged
 * as one structured line. Close the connection with `nc.drain()` or `nc.close()` after the
 * planes built on it are closed.
 *
 * Fails with UNAVAILABLE when no server answers the first connection (unless `waitOnFirstConnect`).
 */
export async function connectNats(options: ConnectNatsOptions): Promise<NatsConnection> {
  const servers = (Array.isArray(options.servers) ? options.servers : options.servers.split(','))
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (servers.length === 0) throw new InvalidArgumentError('connectNats: at least one server URL is required');
  const logger = (options.logger ?? noopLogger).child({ component: 'nats' });
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers,
      name: options.name,
      maxReconnectAttempts: -1,
      reconnectTimeWait: options.reconnectTimeWaitMs ?? 1000,
      reconnectJitter: options.reconnectJitterMs ?? 500,
      timeout: options.timeoutMs ?? 5000,
      waitOnFirstConnect: options.waitOnFirstConnect ?? false,
      pingInterval: options.pingIntervalMs ?? 30_000,
      maxPingOut: options.maxPingOut ?? 2,
    });
  } catch (e) {
    throw new UnavailableError(
      `cannot connect to NATS at ${servers.join(',')}: ${e instanceof Error ? e.message : String(e)}`,
      { cause: e },
    );
  }
  logger.info('connected', { server: nc.getServer(), max_payload: nc.info?.max_payload });
  void logStatus(nc, logger);
  return nc;
}

/** Logs the connection's status events until it closes. Never throws. */
async function logStatus(nc: NatsConnection, logger: Logger): Promise<void> {
  try {
    for await (const s of nc.status()) {
      switch (s.type) {
        case 'disconnect':
          logger.warn('disconnected from NATS', { server: s.server });
          break;
        case 'reconnecting':
          logger.debug('reconnecting to NATS');
          break;
        case 'reconnect':
          logger.info('reconnected to NATS', { server: s.server });
          break;
        case 'error':
          logger.error('NATS connection error', { error: s.error.message });
          break;
        case 'ldm':
          logger.warn('NATS server entering lame duck mode', { server: s.server });
          break;
        case 'staleConnection':
          logger.warn('NATS connection stale; reconnecting');
          break;
        case 'slowConsumer':
          logger.warn('slow NATS consumer', { subject: s.sub.getSubject(), pending: s.pending });
          break;
        case 'close':
          logger.info('NATS connection closed');
          break;
        default:
          break;
      }
    }
  } catch (e) {
    logger.debug('NATS status stream ended', { error: e instanceof Error ? e.message : String(e) });
  }
}
