import { rm } from 'node:fs/promises';
import { prefillWorkerService } from '@dynamo-ts/llm';
import { InvalidArgumentError } from '@dynamo-ts/runtime';
import { EngineProcess, ModelLoadError } from './engine-process';
import {
  KV_TRANSFER_CONFIG_PROPERTIES,
  TransferDir,
  modelFingerprint,
  transferDir,
  type KvTransferConfig,
} from './kv-handover';
import { checkModelFile, kvHandovers, promptTokens } from './worker';

/** Config of {@link llamaCppPrefillWorker}. */
export interface LlamaCppPrefillConfig extends KvTransferConfig {
  model: string;
  context_size: number;
  threads: number;
  /** Save each prefilled state for the decode worker to load (false: it evaluates the prompt again). */
  kv_handover: boolean;
}

/**
 * A prefill worker that runs the real prefill on llama.cpp (its own engine child, one slot): it
 * evaluates each job's tokens, saves the sequence's state (tokens + KV) to a file in the transfer
 * directory it shares with the decode workers, and replies with the file's name, size, checksum,
 * token count and model fingerprint; the decode worker loads it and evaluates only the rest.
 */
export function llamaCppPrefillWorker(name = 'LlamaPrefillWorker') {
  return prefillWorkerService<LlamaCppPrefillConfig>({
    name,
    configProperties: {
      model: { type: 'string', maxLength: 4096, default: '' },
      context_size: { type: 'integer', minimum: 16, maximum: 1 << 20, default: 2048 },
      threads: { type: 'integer', minimum: 1, maximum: 256, default: 1 },
      kv_handover: { type: 'boolean', default: true },
      ...KV_TRANSFER_CONFIG_PROPERTIES,
    },
    async createEngine(ctx) {
      const cfg = ctx.config;
      const file = checkModelFile(cfg.model, `--${name}.model`);
      const proc = new EngineProcess({
        modelPath: file,
        slots: 1,
        contextSize: cfg.context_size,
        threads: cfg.threads,
        logger: ctx.logger,
        restart: true,
      });
      try {
        await proc.start();
      } catch (e) {
        if (e instanceof ModelLoadError)
          throw new InvalidArgumentError(`--${name}.model=${cfg.model}: cannot load the model: ${e.message}`);
        throw e;
      }
      let dir: TransferDir | undefined;
      let fingerprint = '';
      if (cfg.kv_handover) {
        dir = new TransferDir(transferDir(cfg.kv_transfer_dir, ctx.settings.namespace), cfg, ctx.logger);
        await dir.openOrFail(name, proc);
        fingerprint = await modelFingerprint(file);
        ctx.logger.info('KV handover on', { dir: dir.dir });
      }
      return {
        async prefill(task) {
          const tokens = [...task.job.token_ids];
          const saveTo = dir?.tempPath();
          const r = proc.request<{ cached: number; evaluated: number; saved?: number; saveError?: string }>(
            (id) => ({ type: 'prefill', id, slot: 0, tokens, ...(saveTo ? { saveTo } : {}) }),
            (m, ok, fail) => {
              if (m.type === 'done') ok(m);
              else if (m.type === 'failed') fail(new Error(m.error));
            },
          );
          let done;
          try {
            done = await r.done;
          } catch (e) {
            if (saveTo) await rm(saveTo, { force: true });
            throw e;
          }
          promptTokens.inc({ worker: ctx.workerName, cached: 'true' }, done.cached);
          promptTokens.inc({ worker: ctx.workerName, cached: 'false' }, done.evaluated);
          if (!dir || !saveTo) return;
          if (done.saved === undefined) {
            await rm(saveTo, { force: true });
            task.logger.warn('could not save the KV state; the decode worker will prefill', { error: done.saveError });
            return;
          }
          if (Date.now() > task.job.deadline || task.signal.aborted) {
            // The decode worker has already prefilled locally: nobody will load it.
            await rm(saveTo, { force: true });
            return;
          }
          const ref = await dir.publish(saveTo, tokens.length, fingerprint);
          if (ref) {
            kvHandovers.inc({ worker: ctx.workerName, outcome: 'saved' });
            task.logger.debug('KV state saved', { file: ref.file, bytes: ref.bytes, tokens: ref.tokens });
          }
          return ref;
        },
        async close() {
          dir?.close();
          await proc.close();
        },
      };
    },
  });
}
