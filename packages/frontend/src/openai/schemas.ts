/**
 * JSON schemas (ajv) of the OpenAI request bodies. The sampling fields (`temperature`, `top_p`,
 * `seed`) go on to the engine; other fields of the OpenAI API the frontend does not act on (tools,
 * penalties, ...) are type-checked and then ignored; fields not in the API are ignored.
 */
import { MAX_STOP_LENGTH } from './stop';

const nullable = (type: string | string[], extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  type: [...(Array.isArray(type) ? type : [type]), 'null'],
  ...extra,
});

/** Fields shared by `/v1/completions` and `/v1/chat/completions`. */
const COMMON_PROPERTIES = {
  model: { type: 'string', minLength: 1 },
  stream: nullable('boolean'),
  stream_options: nullable('object', { properties: { include_usage: nullable('boolean') } }),
  max_tokens: nullable('integer', { minimum: 1 }),
  stop: nullable(['string', 'array'], {
    items: { type: 'string', maxLength: MAX_STOP_LENGTH },
    maxItems: 16,
    maxLength: MAX_STOP_LENGTH,
  }),
  n: nullable('integer', { minimum: 1 }),
  temperature: nullable('number', { minimum: 0, maximum: 2 }),
  // The engines' ranges: nucleus sampling needs top_p > 0; seeds are 32-bit.
  top_p: nullable('number', { exclusiveMinimum: 0, maximum: 1 }),
  presence_penalty: nullable('number', { minimum: -2, maximum: 2 }),
  frequency_penalty: nullable('number', { minimum: -2, maximum: 2 }),
  logit_bias: nullable('object'),
  seed: nullable('integer', { minimum: 0, maximum: 4294967295 }),
  user: { type: 'string' },
} as const;

/** Roles of chat messages. */
export const CHAT_ROLES = ['system', 'developer', 'user', 'assistant', 'tool', 'function'] as const;

/** JSON schema of the `POST /v1/chat/completions` body. */
export const CHAT_COMPLETIONS_BODY_SCHEMA = {
  type: 'object',
  required: ['model', 'messages'],
  properties: {
    ...COMMON_PROPERTIES,
    messages: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        required: ['role'],
        properties: {
          role: { type: 'string', enum: CHAT_ROLES },
          content: nullable(['string', 'array'], {
            items: {
              type: 'object',
              required: ['type'],
              properties: { type: { type: 'string' }, text: { type: 'string' } },
            },
          }),
          name: { type: 'string' },
        },
      },
    },
    max_completion_tokens: nullable('integer', { minimum: 1 }),
    logprobs: nullable('boolean'),
    top_logprobs: nullable('integer', { minimum: 0, maximum: 20 }),
    tools: nullable('array'),
    tool_choice: nullable(['string', 'object']),
    parallel_tool_calls: nullable('boolean'),
    response_format: nullable('object'),
    metadata: nullable('object'),
    store: nullable('boolean'),
  },
} as const;

/** JSON schema of the `POST /v1/completions` body. */
export const COMPLETIONS_BODY_SCHEMA = {
  type: 'object',
  required: ['model', 'prompt'],
  properties: {
    ...COMMON_PROPERTIES,
    prompt: { type: ['string', 'array'] },
    suffix: nullable('string'),
    echo: nullable('boolean'),
    best_of: nullable('integer', { minimum: 1 }),
    logprobs: nullable('integer', { minimum: 0, maximum: 5 }),
  },
} as const;

/** Text content part of a chat message. */
export interface ChatContentPart {
  type: string;
  text?: string;
}

/** One chat message as validated. */
export interface ChatMessage {
  role: (typeof CHAT_ROLES)[number];
  content?: string | ChatContentPart[] | null;
  name?: string;
}

/** Fields of both bodies that the frontend acts on. */
export interface CommonBody {
  model: string;
  stream?: boolean | null;
  stream_options?: { include_usage?: boolean | null } | null;
  max_tokens?: number | null;
  stop?: string | string[] | null;
  n?: number | null;
  temperature?: number | null;
  top_p?: number | null;
  seed?: number | null;
}

/** The validated `POST /v1/chat/completions` body. */
export interface ChatCompletionsBody extends CommonBody {
  messages: ChatMessage[];
  max_completion_tokens?: number | null;
  logprobs?: boolean | null;
}

/** The validated `POST /v1/completions` body. */
export interface CompletionsBody extends CommonBody {
  prompt: string | unknown[];
  echo?: boolean | null;
  best_of?: number | null;
  logprobs?: number | null;
}
