import type { RequestHandler } from 'express';
import { HttpError } from '../errors';
import { CHAT_FORMAT, type OpenAiDeps } from '../openai/completion';
import { CHAT_COMPLETIONS_BODY_SCHEMA, type ChatCompletionsBody, type ChatMessage } from '../openai/schemas';
import { compileBodySchema } from '../validation';
import type { ChatTurn } from './generate';
import { completionRoute } from './openai-common';

const validate = compileBodySchema<ChatCompletionsBody>(CHAT_COMPLETIONS_BODY_SCHEMA);

/** Most turns of a conversation passed upstream (the Processor's bound). */
export const MAX_CHAT_TURNS = 1024;
/** Most characters of one turn's text passed upstream (the Processor's bound). */
export const MAX_TURN_CHARS = 1_048_576;

/** The text of a message: its string content, or its text parts joined ('' when it has none). */
function messageText(m: ChatMessage): string {
  return typeof m.content === 'string'
    ? m.content
    : (m.content ?? [])
        .filter((p) => p.type === 'text' && typeof p.text === 'string')
        .map((p) => p.text)
        .join('');
}

/**
 * The conversation of a chat as role + text turns, for the model's chat template; refuses more
 * than {@link MAX_CHAT_TURNS} turns or a turn longer than {@link MAX_TURN_CHARS}, naming the field.
 */
export function chatTurns(messages: readonly ChatMessage[]): ChatTurn[] {
  if (messages.length > MAX_CHAT_TURNS) {
    throw new HttpError(
      400,
      'invalid_request_error',
      'invalid_field',
      `messages: at most ${MAX_CHAT_TURNS} messages are accepted (got ${messages.length})`,
      'messages',
    );
  }
  return messages.map((m, i) => {
    const content = messageText(m);
    if (content.length > MAX_TURN_CHARS) {
      throw new HttpError(
        400,
        'invalid_request_error',
        'invalid_field',
        `messages.${i}.content: at most ${MAX_TURN_CHARS} characters are accepted`,
        `messages.${i}.content`,
      );
    }
    return { role: m.role, content };
  });
}

/** The prompt of a chat: the text of the last user message. */
export function chatPrompt(messages: readonly ChatMessage[]): string {
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i]!;
    if (m.role !== 'user') continue;
    const text = messageText(m);
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
 * `POST /v1/chat/completions`: the OpenAI chat API over the upstream; the whole conversation goes
 * upstream (`messages`, for the model's chat template) with the last user message as the prompt
 * (for upstreams without one). Streams `chat.completion.chunk` events when `stream` is true.
 */
export function chatCompletionsRoute(deps: OpenAiDeps): RequestHandler {
  return completionRoute(deps, 'chat_completions', CHAT_FORMAT, validate, (body) => {
    if (body.logprobs) {
      throw new HttpError(400, 'invalid_request_error', 'unsupported', 'logprobs are not supported', 'logprobs');
    }
    return {
      prompt: chatPrompt(body.messages),
      messages: chatTurns(body.messages),
      maxTokens: body.max_completion_tokens ?? body.max_tokens ?? undefined,
    };
  });
}
