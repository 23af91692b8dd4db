import { Router } from 'express';
import { HttpError } from '../errors';
import type { ModelsFn } from '../openai/completion';

/** One entry of `GET /v1/models`. */
export interface ModelCard {
  id: string;
  object: 'model';
  created: number;
  owned_by: string;
}

/**
 * `GET /v1/models` (OpenAI's list shape) and `GET /v1/models/:model` (404 `model_not_found` when
 * not served). `created` is when this frontend first saw the model.
 */
export function modelsRoutes(models: ModelsFn | undefined, ownedBy = 'dynamo-ts'): Router {
  const firstSeen = new Map<string, number>();
  const card = (id: string): ModelCard => {
    let created = firstSeen.get(id);
    if (created === undefined) {
      created = Math.floor(Date.now() / 1000);
      firstSeen.set(id, created);
    }
    return { id, object: 'model', created, owned_by: ownedBy };
  };
  const list = async (): Promise<string[]> => [...new Set(models ? await models() : [])];
  const r = Router();
  r.get('/v1/models', async (_req, res) => {
    res.json({ object: 'list', data: (await list()).map(card) });
  });
  r.get('/v1/models/:model', async (req, res) => {
    const id = req.params.model;
    if (!(await list()).includes(id)) {
      throw new HttpError(404, 'invalid_request_error', 'model_not_found', `The model '${id}' does not exist`, 'model');
    }
    res.json(card(id));
  });
  return r;
}
