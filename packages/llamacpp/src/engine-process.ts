import { fork, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { UnavailableError, type Logger } from '@dynamo-ts/runtime';
import type { FromChild, ToChild } from './child-protocol';

/** How a child loads its model. */
export interface EngineProcessOptions {
  modelPath: string;
  vocabOnly?: boolean;
  /** Sequences (slots) of the context. Default 1. */
  slots?: number;
  /** Context size in tokens (capped at the model's). Default 4096. */
  contextSize?: number;
  /** CPU threads of llama.cpp. Default 1 (the library's default is far slower on small machines). */
  threads?: number;
  logger: Logger;
  /** Restart the child when it dies (with backoff). Default false. */
  restart?: boolean;
  /** First restart delay, ms (doubling up to 5 s). Default 100. */
  restartDelayMs?: number;
  /** Called when the child died (with what it was running), before any restart. */
  onCrash?(info: { code: number | null; signal: NodeJS.Signals | null }): void;
  /** Called each time a child is ready (the first and every restarted one). */
  onReady?(info: ModelInfo): void;
}

/** What the child reports once its model is loaded. */
export interface ModelInfo {
  contextLength: number;
  /** `general.name` of the GGUF ('' when absent). */
  name: string;
  eos: number[];
}

/** The compiled child script (tests run from sources: the build's copy then). */
export function childScript(): string {
  const here = path.join(__dirname, 'engine-child.js');
  if (existsSync(here)) return here;
  const built = path.join(__dirname, '..', 'dist', 'engine-child.js');
  if (existsSync(built)) return built;
  throw new Error(`engine child script not found (${here}); build the package first (tsc -b)`);
}

type Listener = (m: FromChild | { type: 'exit' }) => void;

/** Why a model could not be loaded (bad file, not a model, crashed while loading). */
export class ModelLoadError extends Error {}

/**
 * One engine child process: loads the model (a load that fails or aborts the child becomes a
 * {@link ModelLoadError}), multiplexes requests by id, and, with `restart`, brings a dead child
 * back with backoff. Requests in flight when it dies end with an `UnavailableError`.
 */
export class EngineProcess {
  private child: ChildProcess | undefined;
  private readonly listeners = new Map<number, Listener>();
  private nextId = 1;
  private closed = false;
  private ready: Promise<ModelInfo> | undefined;
  info: ModelInfo | undefined;
  /** Times the child died and was restarted. */
  restarts = 0;

  constructor(private readonly o: EngineProcessOptions) {}

  /** Starts the child and waits for its model; throws {@link ModelLoadError} when it cannot load. */
  start(): Promise<ModelInfo> {
    this.ready = this.spawn();
    return this.ready;
  }

  /** The child's pid (undefined while none runs). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  private spawn(): Promise<ModelInfo> {
    const child = fork(childScript(), [], {
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      env: { ...process.env, NODE_LLAMA_CPP_SKIP_DOWNLOAD: 'true', NODE_LLAMA_CPP_GPU: 'false' },
      serialization: 'advanced',
    });
    this.child = child;
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-2000);
    });
    return new Promise<ModelInfo>((resolve, reject) => {
      let loaded = false;
      child.on('message', (m: FromChild) => {
        if (m.type === 'ready') {
          loaded = true;
          this.info = { contextLength: m.contextLength, name: m.name, eos: m.eos };
          this.o.onReady?.(this.info);
          resolve(this.info);
        } else if (m.type === 'load_failed') {
          child.kill('SIGKILL');
          reject(new ModelLoadError(m.error));
        } else if ('id' in m) this.listeners.get(m.id)?.(m);
      });
      child.on('error', (e) => {
        if (!loaded) reject(new ModelLoadError(e.message));
      });
      child.on('exit', (code, signal) => {
        if (this.child === child) this.child = undefined;
        if (!loaded) {
          const why = stderr.trim().split('\n').slice(-3).join(' | ');
          reject(
            new ModelLoadError(
              `the engine aborted while loading (${signal ?? `exit ${code}`}${why ? `: ${why}` : ''})`,
            ),
          );
          return;
        }
        for (const l of [...this.listeners.values()]) l({ type: 'exit' });
        if (this.closed) return;
        this.o.logger.error('engine child died', { pid: child.pid, code, signal, stderr: stderr.slice(-300) });
        this.o.onCrash?.({ code, signal });
        if (this.o.restart) this.ready = this.restartLoop();
      });
      const load: ToChild = {
        type: 'load',
        modelPath: this.o.modelPath,
        vocabOnly: this.o.vocabOnly ?? false,
        slots: this.o.slots ?? 1,
        contextSize: this.o.contextSize ?? 4096,
        threads: this.o.threads ?? 1,
      };
      child.send(load);
    });
  }

  private async restartLoop(): Promise<ModelInfo> {
    let delay = this.o.restartDelayMs ?? 100;
    for (;;) {
      await sleep(delay);
      if (this.closed) throw new UnavailableError('engine closed');
      try {
        const info = await this.spawn();
        this.restarts++;
        this.o.logger.info('engine child restarted', { pid: this.child?.pid, restarts: this.restarts });
        return info;
      } catch (e) {
        this.o.logger.error('engine child restart failed', { error: (e as Error).message, retry_ms: delay * 2 });
        delay = Math.min(delay * 2, 5000);
      }
    }
  }

  /** Waits for a live child (after a crash: the restarted one). */
  async whenReady(): Promise<ModelInfo> {
    if (!this.ready) throw new Error('EngineProcess not started');
    return this.ready;
  }

  /**
   * Sends a request and feeds every reply with its id to `onMessage` until it returns true; the
   * child's death ends it with `UnavailableError`.
   */
  request<T>(
    build: (id: number) => ToChild,
    onMessage: (m: FromChild, settle: (v: T) => void, fail: (e: Error) => void) => void,
  ): { id: number; done: Promise<T> } {
    const id = this.nextId++;
    const child = this.child;
    const done = new Promise<T>((resolve, reject) => {
      const end = (): void => {
        this.listeners.delete(id);
      };
      if (!child?.connected) {
        reject(new UnavailableError('engine child is not running'));
        return;
      }
      this.listeners.set(id, (m) => {
        if (m.type === 'exit') {
          end();
          reject(new UnavailableError('engine child died'));
          return;
        }
        onMessage(
          m,
          (v) => {
            end();
            resolve(v);
          },
          (e) => {
            end();
            reject(e);
          },
        );
      });
      child.send(build(id));
    });
    return { id, done };
  }

  /** Sends a message that needs no answer (a cancel). */
  post(m: ToChild): void {
    if (this.child?.connected) this.child.send(m);
  }

  /** Token ids of `text`. */
  async tokenize(text: string): Promise<number[]> {
    await this.whenReady();
    return this.request<number[]>(
      (id) => ({ type: 'tokenize', id, text }),
      (m, ok, fail) =>
        m.type === 'tokens' ? ok(m.tokens) : m.type === 'failed' ? fail(new Error(m.error)) : undefined,
    ).done;
  }

  /** Text of `tokens`. */
  async detokenize(tokens: number[]): Promise<string> {
    await this.whenReady();
    return this.request<string>(
      (id) => ({ type: 'detokenize', id, tokens }),
      (m, ok, fail) => (m.type === 'text' ? ok(m.text) : m.type === 'failed' ? fail(new Error(m.error)) : undefined),
    ).done;
  }

  /** Stops the child (no restart). */
  async close(): Promise<void> {
    this.closed = true;
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const gone = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 2000);
    await gone;
    clearTimeout(t);
  }
}
