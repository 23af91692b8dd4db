import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Template as JinjaTemplate } from '@huggingface/jinja' with { 'resolution-mode': 'import' };
import type { Tokenizer as HfTokenizerClass } from '@huggingface/tokenizers' with { 'resolution-mode': 'import' };
import { InvalidArgumentError } from '@dynamo-ts/runtime';
import type { ChatTurn, StreamDecoder, Tokenizer } from '@dynamo-ts/llm';

/** Options of {@link loadHfTokenizer}. */
export interface HfTokenizerOptions {
  /**
   * Render chat conversations through the model's chat template (what the engine does for a chat
   * request). Default true when the model has a template; false: a chat is encoded as the raw text
   * of its last user message.
   */
  chatTemplate?: boolean;
}

/** A tokenizer loaded from local files, with its chat template (when any). */
export interface HfTokenizer extends Tokenizer {
  /** The chat template applied, or undefined. */
  readonly template: string | undefined;
  /** Renders `messages` through the chat template with the generation prompt. */
  applyChatTemplate(messages: readonly ChatTurn[]): string;
}

// Both packages ship CommonJS builds beside their ES modules; their types are declared as ESM only.
const { Template } = require('@huggingface/jinja') as { Template: typeof JinjaTemplate };
const { Tokenizer: HfTokenizerCtor } = require('@huggingface/tokenizers') as { Tokenizer: typeof HfTokenizerClass };

function readJson(path: string): Record<string, unknown> {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`cannot read ${path}: ${(e as Error).message}`);
  }
}

/** A special token's text in tokenizer_config.json: a string or `{content}`. */
function tokenText(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') {
    return (v as { content: string }).content;
  }
  return undefined;
}

/** The default chat template of tokenizer_config.json (a string, or a list of named ones). */
function templateOf(config: Record<string, unknown>, dir: string): string | undefined {
  const t = config.chat_template;
  if (typeof t === 'string') return t;
  if (Array.isArray(t)) {
    const named = t as { name?: unknown; template?: unknown }[];
    const d = named.find((x) => x.name === 'default') ?? named[0];
    if (typeof d?.template === 'string') return d.template;
  }
  const file = join(dir, 'chat_template.jinja');
  return existsSync(file) ? readFileSync(file, 'utf8') : undefined;
}

/**
 * Loads a HuggingFace tokenizer from a local `tokenizer.json` (or the directory holding it, with
 * its `tokenizer_config.json` and chat template): no hub access. As vLLM does: a raw prompt
 * (completions, `/generate`) is encoded with the model's special tokens added (e.g. BOS); a chat
 * is rendered through the chat template (`add_generation_prompt`, the config's `bos_token` and
 * `eos_token`) and encoded without adding special tokens, since the template writes them.
 */
export function loadHfTokenizer(path: string, options: HfTokenizerOptions = {}): HfTokenizer {
  if (!existsSync(path)) throw new Error(`tokenizer ${path} does not exist`);
  const dir = statSync(path).isDirectory() ? path : dirname(path);
  const file = statSync(path).isDirectory() ? join(path, 'tokenizer.json') : path;
  if (!existsSync(file)) throw new Error(`no tokenizer.json in ${dir}`);
  const json = readJson(file);
  const cfgPath = join(dir, 'tokenizer_config.json');
  const config = existsSync(cfgPath) ? readJson(cfgPath) : {};
  let hf: HfTokenizerCore;
  try {
    hf = new HfTokenizerCtor(json, config) as unknown as HfTokenizerCore;
  } catch (e) {
    throw new Error(`${file} is not a tokenizer this package can load: ${(e as Error).message}`);
  }
  const source = options.chatTemplate === false ? undefined : templateOf(config, dir);
  const template = source === undefined ? undefined : new Template(source);
  const specials = {
    bos_token: tokenText(config.bos_token) ?? '',
    eos_token: tokenText(config.eos_token) ?? '',
  };
  const applyChatTemplate = (messages: readonly ChatTurn[]): string => {
    if (!template) throw new Error('this tokenizer has no chat template');
    // Plain copies: the template sees exactly role and content.
    const turns = messages.map((m) => ({ role: m.role, content: m.content }));
    try {
      return template.render({ messages: turns, add_generation_prompt: true, ...specials });
    } catch (e) {
      // The template refused the conversation (e.g. its `raise_exception` for a role it has no turn for).
      throw new InvalidArgumentError(`the chat template refused the messages: ${(e as Error).message}`, { cause: e });
    }
  };
  const tokenizer: HfTokenizer = {
    template: source,
    applyChatTemplate,
    encode: (text: string): number[] => hf.encode(text).ids,
    decoder: () => new HfStreamDecoder(hf),
  };
  if (template) {
    tokenizer.encodeChat = (messages: readonly ChatTurn[]): number[] =>
      hf.encode(applyChatTemplate(messages), { add_special_tokens: false }).ids;
  }
  return tokenizer;
}

/** What this module uses of the HF tokenizer. */
interface HfTokenizerCore {
  encode(text: string, options?: { add_special_tokens?: boolean }): { ids: number[] };
  decode(ids: number[], options?: { skip_special_tokens?: boolean }): string;
}

/**
 * Incremental detokenizing the way engines do it: decode a short window of recent tokens twice
 * (with and without the new ones) and emit what was added, holding text back while it ends in an
 * unfinished character (U+FFFD), so pieces concatenate to the decoded text.
 */
class HfStreamDecoder implements StreamDecoder {
  private readonly ids: number[] = [];
  private prefix = 0;
  private read = 0;

  constructor(private readonly hf: HfTokenizerCore) {}

  private text(from: number, to?: number): string {
    const ids = this.ids.slice(from, to);
    return ids.length === 0 ? '' : this.hf.decode(ids, { skip_special_tokens: true });
  }

  push(token: number): string {
    this.ids.push(token);
    const before = this.text(this.prefix, this.read);
    const after = this.text(this.prefix);
    if (after.length <= before.length || after.endsWith('\uFFFD')) return '';
    this.prefix = this.read;
    this.read = this.ids.length;
    return after.slice(before.length);
  }

  flush(): string {
    const before = this.text(this.prefix, this.read);
    const after = this.text(this.prefix);
    this.prefix = this.read = this.ids.length;
    return after.length > before.length ? after.slice(before.length) : '';
  }
}
