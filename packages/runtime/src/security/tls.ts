import { readFileSync } from 'node:fs';
import { InvalidArgumentError } from '../errors';

/** TLS files of a client connection (PEM). */
export interface TlsFiles {
  /** CA certificate(s) the server's certificate must chain to. Default: the system's CAs. */
  caFile?: string;
  /** Client certificate for mutual TLS; requires `keyFile`. */
  certFile?: string;
  /** Private key of `certFile`; requires `certFile`. */
  keyFile?: string;
}

/** The contents of {@link TlsFiles}, read and checked. */
export interface TlsMaterial {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

/**
 * Reads the TLS files, failing with INVALID_ARGUMENT naming the option (prefixed by `what`, e.g.
 * `nats tls.certFile`) when a certificate comes without its key (or the reverse) or a file cannot
 * be read. Never includes file contents in the message.
 */
export function readTlsFiles(what: string, tls: TlsFiles): TlsMaterial {
  if ((tls.certFile === undefined) !== (tls.keyFile === undefined)) {
    const [set, unset] = tls.certFile !== undefined ? ['certFile', 'keyFile'] : ['keyFile', 'certFile'];
    throw new InvalidArgumentError(`${what} tls.${set} is set but tls.${unset} is not: mutual TLS needs both`);
  }
  const read = (key: keyof TlsFiles): Buffer | undefined => {
    const file = tls[key];
    if (file === undefined) return undefined;
    try {
      return readFileSync(file);
    } catch (e) {
      throw new InvalidArgumentError(
        `${what} tls.${key}: cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? 'error'})`,
      );
    }
  };
  const out: TlsMaterial = {};
  const ca = read('caFile');
  const cert = read('certFile');
  const key = read('keyFile');
  if (ca) out.ca = ca;
  if (cert) out.cert = cert;
  if (key) out.key = key;
  return out;
}
