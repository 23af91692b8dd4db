import type { RequestHandler } from 'express';
import { HttpError } from '../errors';
import { TEXT_FORMAT, type OpenAiDeps } from '../openai/completion';
import { COMPLETIONS_BODY_SCHEMA, type CompletionsBody } from '../openai/schemas';
import { compileBodySchema } from '../validation';
import { completionRoute } from './openai-common';

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
  return completionRoute(deps, 'completions', TEXT_FORMAT, validate, (body) => {
    if (body.best_of != null && body.best_of > 1) {
      throw new HttpError(400, 'invalid_request_error', 'unsupported', 'best_of > 1 is not supported', 'best_of');
    }
    if (body.echo) {
      throw new HttpError(400, 'invalid_request_error', 'unsupported', 'echo is not supported', 'echo');
    }
    if (body.logprobs != null) {
      throw new HttpError(400, 'invalid_request_error', 'unsupported', 'logprobs are not supported', 'logprobs');
    }
    return { prompt: completionPrompt(body.prompt), maxTokens: body.max_tokens ?? undefined };
  });
}
