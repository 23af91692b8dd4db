import { createHash, randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { KvStateRef } from '@dynamo-ts/llm';
import { InvalidArgumentError, type Logger } from '@dynamo-ts/runtime';

/** Config keys of the KV handover, on both the prefill and the decode workers. */
export interface KvTransferConfig {
  /** Directory both workers share ('' = a per-namespace directory under the OS temp dir). */
  kv_transfer_dir: string;
  /** Most bytes of state files the directory holds; the oldest go first. */
  kv_transfer_max_bytes: number;
  /** A state file older than this is deleted (its completion was lost or came too late), ms. */
  kv_transfer_ttl_ms: number;
}

/** JSON-schema properties of {@link KvTransferConfig}. */
export const KV_TRANSFER_CONFIG_PROPERTIES = {
  kv_transfer_dir: { type: 'string', maxLength: 4096, default: '' },
  kv_transfer_max_bytes: { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER, default: 1 << 30 },
  kv_transfer_ttl_ms: { type: 'integer', minimum: 100, maximum: 86_400_000, default: 60_000 },
} as const;

/** llama.cpp's sequence-state file: magic `ggsq`, version, token count, token ids, then the KV. */
const SEQ_MAGIC = 0x67677371;
const SEQ_VERSION = 3;
/** Names of finished state files (the `.tmp` ones are being written). */
const STATE_FILE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,199}\.kv$/;
const TEMP_FILE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,199}\.kv\.tmp$/;
const FINGERPRINT_SPAN = 4 << 20;

/** The transfer directory of a deployment: `dir`, or one per namespace under the OS temp dir. */
export function transferDir(dir: string, namespace: string): string {
  if (dir) return path.resolve(dir);
  return path.join(tmpdir(), 'dynamo-ts-kv', namespace.replace(/[^A-Za-z0-9._-]/g, '_'));
}

/**
 * A fingerprint of a model file: SHA-256 of its size, first and last 4 MiB (the GGUF header with
 * its metadata and tensor table, and weights at both ends) without reading a multi-GB file whole.
 */
export async function modelFingerprint(file: string): Promise<string> {
  const h = createHash('sha256');
  const fh = await open(file, 'r');
  try {
    const { size } = await fh.stat();
    h.update(String(size));
    const read = async (pos: number, len: number): Promise<void> => {
      const b = Buffer.alloc(len);
      const { bytesRead } = await fh.read(b, 0, len, pos);
      h.update(b.subarray(0, bytesRead));
    };
    await read(0, Math.min(size, FINGERPRINT_SPAN));
    if (size > FINGERPRINT_SPAN) await read(Math.max(FINGERPRINT_SPAN, size - FINGERPRINT_SPAN), FINGERPRINT_SPAN);
  } finally {
    await fh.close();
  }
  return h.digest('hex').slice(0, 32);
}

async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Why a handed-over state cannot be loaded (the decode engine then prefills locally). */
export class KvStateRejected extends Error {}

/**
 * The directory state files move through: the prefill side writes `NAME.kv.tmp` (the engine
 * saves there), hashes it and renames it to `NAME.kv`; the decode side checks a {@link KvStateRef}
 * against its file before the engine loads it, and deletes it after. Files past the TTL and
 * beyond the byte cap are swept.
 */
export class TransferDir {
  private sweeper: NodeJS.Timeout | undefined;

  constructor(
    readonly dir: string,
    private readonly cfg: Pick<KvTransferConfig, 'kv_transfer_max_bytes' | 'kv_transfer_ttl_ms'>,
    private readonly logger: Logger,
  ) {}

  /** Creates the directory (owner-only) and starts sweeping it. */
  async open(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const every = Math.max(50, Math.floor(this.cfg.kv_transfer_ttl_ms / 2));
    this.sweeper = setInterval(() => void this.sweep(), every);
    this.sweeper.unref();
  }

  /**
   * {@link TransferDir.open} for a worker at start: a directory that cannot be created closes `engine` and
   * is a usage error naming `--SERVICE.kv_transfer_dir`.
   */
  async openOrFail(service: string, engine: { close(): Promise<void> }): Promise<void> {
    try {
      await this.open();
    } catch (e) {
      await engine.close();
      throw new InvalidArgumentError(
        `--${service}.kv_transfer_dir=${this.dir}: cannot create it (${(e as Error).message})`,
      );
    }
  }

  close(): void {
    if (this.sweeper) clearInterval(this.sweeper);
  }

  /** A fresh temporary path for the engine to save to. */
  tempPath(): string {
    return path.join(this.dir, `${randomUUID()}.kv.tmp`);
  }

  /**
   * Makes the saved `temp` file a state file: refuses one over the cap, evicts the oldest files
   * to make room, renames it into place and describes it.
   */
  async publish(temp: string, tokens: number, model: string): Promise<KvStateRef | undefined> {
    const { size } = await stat(temp);
    if (size > this.cfg.kv_transfer_max_bytes) {
      await rm(temp, { force: true });
      this.logger.warn('KV state larger than kv_transfer_max_bytes; not handed over', {
        bytes: size,
        max_bytes: this.cfg.kv_transfer_max_bytes,
      });
      return undefined;
    }
    await this.sweep(size, path.basename(temp));
    const sha256 = await sha256File(temp);
    const file = path.basename(temp).slice(0, -'.tmp'.length);
    await rename(temp, path.join(this.dir, file));
    return { file, bytes: size, tokens, sha256, model };
  }

  /** The path of a ref's file, or why it is not usable: the caller prefills locally then. */
  async check(ref: KvStateRef, model: string, context: readonly number[]): Promise<string> {
    if (!STATE_FILE.test(ref.file)) throw new KvStateRejected(`not a state file name: ${ref.file.slice(0, 64)}`);
    const file = path.join(this.dir, ref.file);
    if (path.dirname(file) !== this.dir) throw new KvStateRejected('state file outside the transfer directory');
    if (ref.model !== model) throw new KvStateRejected('written by another model');
    if (ref.tokens > context.length) throw new KvStateRejected('holds more tokens than the request');
    let st;
    try {
      st = await lstat(file);
    } catch {
      throw new KvStateRejected('state file missing');
    }
    if (!st.isFile()) throw new KvStateRejected('not a regular file');
    if (st.size !== ref.bytes) throw new KvStateRejected(`size ${st.size}, expected ${ref.bytes}`);
    const fh = await open(file, 'r');
    try {
      const head = Buffer.alloc(12 + 4 * ref.tokens);
      const { bytesRead } = await fh.read(head, 0, head.length, 0);
      if (bytesRead < head.length || head.readUInt32LE(0) !== SEQ_MAGIC || head.readUInt32LE(4) !== SEQ_VERSION)
        throw new KvStateRejected('not a llama.cpp sequence state');
      if (head.readUInt32LE(8) !== ref.tokens) throw new KvStateRejected('token count differs from the reply');
      for (let i = 0; i < ref.tokens; i++)
        if (head.readInt32LE(12 + 4 * i) !== context[i])
          throw new KvStateRejected(`token ${i} differs from the request's prompt`);
    } finally {
      await fh.close();
    }
    if ((await sha256File(file)) !== ref.sha256) throw new KvStateRejected('checksum mismatch (corrupt file)');
    return file;
  }

  /** Deletes a ref's file (once loaded, rejected or unclaimed); a bad name deletes nothing. */
  async discard(ref: Pick<KvStateRef, 'file'>): Promise<void> {
    if (!STATE_FILE.test(ref.file)) return;
    await rm(path.join(this.dir, ref.file), { force: true }).catch(() => undefined);
  }

  /** Deletes expired files, then the oldest until `room` more bytes fit under the cap. */
  async sweep(room = 0, keep?: string): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return;
    }
    const now = Date.now();
    const files: { name: string; size: number; mtime: number }[] = [];
    for (const name of names) {
      if (name === keep || !(STATE_FILE.test(name) || TEMP_FILE.test(name))) continue;
      try {
        const st = await lstat(path.join(this.dir, name));
        if (st.isFile()) files.push({ name, size: st.size, mtime: st.mtimeMs });
      } catch {
        /* gone meanwhile */
      }
    }
    let total = files.reduce((a, f) => a + f.size, 0);
    files.sort((a, b) => a.mtime - b.mtime);
    let removed = 0;
    for (const f of files) {
      if (now - f.mtime <= this.cfg.kv_transfer_ttl_ms && total + room <= this.cfg.kv_transfer_max_bytes) break;
      await rm(path.join(this.dir, f.name), { force: true }).catch(() => undefined);
      total -= f.size;
      removed++;
    }
    if (removed) this.logger.info('KV state files swept', { files: removed, dir_bytes: total });
  }
}
