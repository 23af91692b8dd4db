import type { Request, RequestHandler, Response } from 'express';
import { HttpError } from '../errors';
import { TEXT_FORMAT, checkModel, serveCompletion, type CompletionJob, type OpenAiDeps } from '../openai/completion';
import { COMPLETIONS_BODY_SCHEMA, type CompletionsBody } from '../openai/schemas';
import { compileBodySchema, validateBody } from '../validation';
import { commonJob, rejectUnsupported, requestIdOf, requestTypeOf } from './openai-common';

const validate = compileBodySchema<CompletionsBody>(COMPLETIONS_BODY_SCHEMA);

/** The prompt of a completions body: a non-empty string, or an array holding exactly one. */
export function completionPrompt(prompt: CompletionsBody['prompt']): string {
  const p: unknown = Array.isArray(prompt) && prompt.length === 1 ? prompt[0] : prompt;
  if (typeof p === 'string' && p.length > 0) return p;
  const why = Array.isArray(p)
    ? prompt.length === 1
      ? 'token-id prompts are not supported'
      : `batches of ${prompt.length} prompts are not supported`
    : 'prompt must not be empty';
  throw new HttpError(
    400,
    'invalid_request_error',
    'invalid_field',
    `prompt must be a non-empty string or an array of one string (${why})`,
    'prompt',
  );
}

/** `POST /v1/completions`: the OpenAI (legacy) text completions API over the upstream. */
export function completionsRoute(deps: OpenAiDeps): RequestHandler {
  return async (req: Request, res: Response): Promise<void> => {
    const startedAt = performance.now();
    let job: CompletionJob;
    try {
      const body = validateBody(req, validate);
      rejectUnsupported(body);
      if (body.best_of != null && body.best_of > 1) {
        throw new HttpError(400, 'invalid_request_error', 'unsupported', 'best_of > 1 is not supported', 'best_of');
      }
      if (body.echo) {
        throw new HttpError(400, 'invalid_request_error', 'unsupported', 'echo is not supported', 'echo');
      }
      if (body.logprobs != null) {
        throw new HttpError(400, 'invalid_request_error', 'unsupported', 'logprobs are not supported', 'logprobs');
      }
      const prompt = completionPrompt(body.prompt);
      await checkModel(deps.models, body.model);
      job = {
        ...commonJob(body, startedAt),
        endpoint: 'completions',
        requestId: requestIdOf(req),
        prompt,
        maxTokens: body.max_tokens ?? undefined,
      };
    } catch (e) {
      deps.metrics.rejected('completions', requestTypeOf(req));
      throw e;
    }
    await serveCompletion(res, deps, job, TEXT_FORMAT);
  };
}
