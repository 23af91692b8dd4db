import { isDynamoError } from '@dynamo-ts/runtime';
import { defineService, type EndpointContext } from '@dynamo-ts/sdk';
import {
  PROCESSOR_REQUEST_SCHEMA,
  type ProcessorEvent,
  type ProcessorRequest,
  type RequestStatus,
  type RouteDecision,
  type WorkerEvent,
} from './protocol';
import { Router } from './router';
import { IncrementalDetokenizer, tokenize } from './tokenizer';
import { DummyWorker } from './worker';

/** Config of the Processor. */
export interface ProcessorConfig {
  /** Workers tried for one request when the chosen one is unavailable before its first token. */
  max_route_attempts: number;
}

/**
 * Pre/post-processing: tokenizes the prompt, asks the Router for the best worker, calls that
 * worker directly, detokenizes its token stream. A worker that turns out to be gone before
 * its first token is marked down and the request is routed again.
 */
export const Processor = defineService<ProcessorConfig>({
  name: 'Processor',
  dependencies: [Router, DummyWorker],
  configSchema: {
    properties: { max_route_attempts: { type: 'integer', minimum: 1, maximum: 16, default: 3 } },
  },
  async create(ctx) {
    const router = await ctx.client(Router, 'generate');
    const workers = await ctx.client(DummyWorker, 'generate');
    for (const i of workers.instances()) ctx.logger.info('worker joined', { name: i.name, instance_id: i.instanceId });
    workers.onChange((c) =>
      ctx.logger.info(c.type === 'added' ? 'worker joined' : 'worker left', {
        name: c.instance.name,
        instance_id: c.instance.instanceId,
      }),
    );
    const status = (s: RequestStatus): void => {
      ctx.component.publish('request_status', s).catch((e: Error) => {
        ctx.logger.warn('could not publish request status', { request_id: s.request_id, error: e.message });
      });
    };

    async function* generate(req: ProcessorRequest, ectx: EndpointContext): AsyncGenerator<ProcessorEvent> {
      const tokens = tokenize(req.prompt);
      const requestId = req.request_id;
      const failed: string[] = [];
      for (let attempt = 1; ; attempt++) {
        let decision: RouteDecision | undefined;
        for await (const d of router.generate<RouteDecision>(
          { token_ids: tokens, request_id: requestId, ...(failed.length ? { exclude_workers: failed } : {}) },
          { signal: ectx.signal, requestId },
        )) {
          decision = d;
        }
        if (!decision) throw new Error('router answered nothing');
        ectx.logger.debug('routed', {
          worker_id: decision.worker_id,
          overlap_blocks: decision.overlap_blocks,
          attempt,
        });
        const detok = new IncrementalDetokenizer();
        let sent = false;
        try {
          for await (const ev of workers.generate<WorkerEvent>(
            { request_id: requestId, token_ids: tokens },
            { instanceId: decision.worker_id, signal: ectx.signal, requestId },
          )) {
            if (!sent) status({ request_id: requestId, worker_id: decision.worker_id, status: 'first_token' });
            sent = true;
            for (const t of ev.token_ids) {
              const text = detok.push(t);
              if (text) yield { worker_output: text, request_id: requestId };
            }
          }
          const tail = detok.flush();
          if (tail) yield { worker_output: tail, request_id: requestId };
          return;
        } catch (e) {
          const retry =
            !sent &&
            attempt < ctx.config.max_route_attempts &&
            isDynamoError(e) &&
            (e.code === 'UNAVAILABLE' || e.code === 'NOT_FOUND');
          if (!retry) throw e;
          workers.markDown(decision.worker_id);
          failed.push(decision.worker_id);
          ectx.logger.warn('worker unavailable before first token; routing again', {
            worker_id: decision.worker_id,
            attempt,
            error: e.message,
          });
        } finally {
          status({ request_id: requestId, worker_id: decision.worker_id, status: 'finished' });
        }
      }
    }

    return { endpoints: { generate: { requestSchema: PROCESSOR_REQUEST_SCHEMA, handler: generate } } };
  },
});
