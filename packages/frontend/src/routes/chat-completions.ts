import type { RequestHandler } from 'express';
import { HttpError } from '../errors';
import { CHAT_FORMAT, type OpenAiDeps } from '../openai/completion';
import { CHAT_COMPLETIONS_BODY_SCHEMA, type ChatCompletionsBody, type ChatMessage } from '../openai/schemas';
import { compileBodySchema } from '../validation';
import { completionRoute } from './openai-common';

const validate = compileBodySchema<ChatCompletionsBody>(CHAT_COMPLETIONS_BODY_SCHEMA);

/** The prompt of a chat: the text of the last user message. */
export function chatPrompt(messages: readonly ChatMessage[]): string {
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i]!;
    if (m.role !== 'user') continue;
    const text =
      typeof m.content === 'string'
        ? m.content
        : (m.content ?? [])
            .filter((p) => p.type === 'text' && typeof p.text === 'string')
            .map((p) => p.text)
            .join('');
    if (!text) {
      throw new HttpError(
        400,
        'invalid_request_error',
        'invalid_field',
        `messages.${i}.content: the last user message has no text`,
        `messages.${i}.content`,
      );
    }
    return text;
  }
  throw new HttpError(400, 'invalid_request_error', 'invalid_field', 'messages must hold a user message', 'messages');
}

/**
 * `POST /v1/chat/completions`: the OpenAI chat API over the upstream; the prompt is the last user
 * message. Streams `chat.completion.chunk` events when `stream` is true.
 */
export function chatCompletionsRoute(deps: OpenAiDeps): RequestHandler {
  return completionRoute(deps, 'chat_completions', CHAT_FORMAT, validate, (body) => {
    if (body.logprobs) {
      throw new HttpError(400, 'invalid_request_error', 'unsupported', 'logprobs are not supported', 'logprobs');
    }
    return {
      prompt: chatPrompt(body.messages),
      maxTokens: body.max_completion_tokens ?? body.max_tokens ?? undefined,
    };
  });
}
