import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { noopLogger } from '@dynamo-ts/runtime';
import { createFrontendApp, type FrontendOptions } from './app';

/** Options of {@link startFrontend}. */
export interface FrontendServerOptions extends FrontendOptions {
  /** Port; 0 picks a free one. Default 8000. */
  port?: number;
  /**
   * Address to listen on. Default `0.0.0.0`: every interface, reachable from other nodes as the
   * seed's frontend is; `127.0.0.1` keeps it to this machine (e.g. behind a local proxy).
   */
  host?: string;
}

/** A listening frontend. */
export interface FrontendServer {
  readonly server: http.Server;
  readonly port: number;
  readonly url: string;
  /** Stops accepting connections and waits for in-flight requests (at most `timeoutMs`, then cuts them). */
  drain(options?: { timeoutMs?: number }): Promise<void>;
  /** Closes at once. */
  close(): Promise<void>;
}

/** Starts the frontend HTTP server. */
export async function startFrontend(options: FrontendServerOptions): Promise<FrontendServer> {
  const logger = options.logger ?? noopLogger;
  const app = createFrontendApp(options);
  const server = http.createServer(app);
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 8000, options.host ?? '0.0.0.0', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://127.0.0.1:${port}`;
  logger.info('frontend listening', { port, host: options.host ?? '0.0.0.0' });
  let drained: Promise<void> | undefined;
  const drain = (opts: { timeoutMs?: number } = {}): Promise<void> =>
    (drained ??= new Promise<void>((resolve) => {
      const timer = setTimeout(() => server.closeAllConnections(), opts.timeoutMs ?? 30000);
      timer.unref();
      server.close(() => {
        clearTimeout(timer);
        resolve();
      });
      server.closeIdleConnections();
    }));
  return {
    server,
    port,
    url,
    drain,
    close: async () => {
      server.closeAllConnections();
      await drain({ timeoutMs: 0 });
    },
  };
}
