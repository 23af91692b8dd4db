/**
 * The engine child: hosts node-llama-cpp (model, one context with N sequences = slots) so a GGML
 * abort on a bad model or a crash takes down only this process. Driven by {@link ToChild}
 * messages over the IPC channel; answers with {@link FromChild}. Run with `fork`, never imported.
 */
import type { FromChild, ToChild } from './child-protocol';

import type * as NodeLlamaCpp from 'node-llama-cpp' with { 'resolution-mode': 'import' };
import type { Token } from 'node-llama-cpp' with { 'resolution-mode': 'import' };

type NodeLlama = typeof NodeLlamaCpp;
/** Token ids as node-llama-cpp types them. */
const asTokens = (t: number[]): Token[] => t as unknown as Token[];
type Model = Awaited<ReturnType<Awaited<ReturnType<NodeLlama['getLlama']>>['loadModel']>>;
type Context = Awaited<ReturnType<Model['createContext']>>;
type Sequence = ReturnType<Context['getSequence']>;

const send = (m: FromChild): void => {
  process.send?.(m);
};

let model: Model | undefined;
let sequences: Sequence[] = [];
/** Generations running (one per slot; slots run concurrently, the context batches them). */
const running = new Set<number>();
/** Running generations asked to stop. */
const cancelled = new Set<number>();

async function load(m: Extract<ToChild, { type: 'load' }>): Promise<void> {
  try {
    // node-llama-cpp is ESM-only: a real dynamic import (kept as import() by the Node16 module mode).
    const lib: NodeLlama = await import('node-llama-cpp');
    const llama = await lib.getLlama({ gpu: false, build: 'never', logLevel: lib.LlamaLogLevel.error });
    model = await llama.loadModel({ modelPath: m.modelPath, vocabOnly: m.vocabOnly });
    let eos: number[] = [];
    if (!m.vocabOnly) {
      const ctx = await model.createContext({
        contextSize: Math.min(m.contextSize, model.trainContextSize),
        sequences: m.slots,
        threads: m.threads,
      });
      sequences = Array.from({ length: m.slots }, () => ctx.getSequence());
      const e = model.tokens.eos;
      eos = e === null ? [] : [e];
    }
    send({
      type: 'ready',
      contextLength: m.vocabOnly ? model.trainContextSize : sequences[0]!.context.contextSize,
      name: String(model.fileInfo.metadata?.general?.name ?? ''),
      eos,
    });
  } catch (e) {
    send({ type: 'load_failed', error: (e as Error).message });
  }
}

function commonPrefix(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/** Brings the slot to `tokens` less the last (reusing the longest common prefix); returns it. */
async function reuse(seq: Sequence, tokens: number[]): Promise<number> {
  const lcp = Math.min(commonPrefix(seq.contextTokens, tokens), tokens.length - 1);
  if (seq.nextTokenIndex > lcp) await seq.eraseContextTokenRanges([{ start: lcp, end: seq.nextTokenIndex }]);
  return lcp;
}

/**
 * Loads a sequence-state file (checked by the parent) into the slot, replacing what it held;
 * returns the tokens loaded. A file llama.cpp refuses leaves the slot empty (it clears the
 * sequence) and throws: the prompt is then evaluated.
 */
async function loadState(seq: Sequence, file: string, tokens: number[]): Promise<number> {
  await seq.loadStateFromFile(file, { acceptRisk: true });
  const got = seq.contextTokens;
  if (commonPrefix(got, tokens) !== got.length) {
    // The file changed after the parent checked it: drop what it brought.
    await seq.eraseContextTokenRanges([{ start: 0, end: seq.nextTokenIndex }]);
    throw new Error('loaded state does not match the prompt');
  }
  return got.length;
}

async function generate(m: Extract<ToChild, { type: 'generate' }>): Promise<void> {
  running.add(m.id);
  const seq = sequences[m.slot];
  let cached = 0;
  let loaded: number | undefined;
  let loadError: string | undefined;
  let reason: 'stop' | 'length' | 'cancelled' | 'error' = 'length';
  let error: string | undefined;
  try {
    if (!seq || !model) throw new Error(`no slot ${m.slot}`);
    if (m.tokens.length === 0) throw new Error('empty context');
    if (m.loadState !== undefined) {
      try {
        loaded = await loadState(seq, m.loadState, m.tokens);
      } catch (e) {
        loaded = 0;
        loadError = (e as Error).message;
      }
    }
    cached = await reuse(seq, m.tokens);
    let n = 0;
    if (m.maxNewTokens > 0 && !cancelled.has(m.id)) {
      const gen = seq.evaluate(asTokens(m.tokens.slice(cached)), {
        temperature: m.temperature,
        ...(m.topP !== undefined ? { topP: m.topP } : {}),
        ...(m.seed !== undefined ? { seed: m.seed } : {}),
      });
      for await (const t of gen) {
        if (cancelled.has(m.id)) {
          reason = 'cancelled';
          break;
        }
        if (model.isEogToken(t)) {
          reason = 'stop';
          break;
        }
        send({ type: 'token', id: m.id, token: t });
        if (++n >= m.maxNewTokens) break;
        // The check for a cancel sent while this token was produced happens before the next one.
        await new Promise<void>((r) => setImmediate(r));
        if (cancelled.has(m.id)) {
          reason = 'cancelled';
          break;
        }
      }
    } else if (cancelled.has(m.id)) reason = 'cancelled';
  } catch (e) {
    reason = 'error';
    error = (e as Error).message;
  }
  running.delete(m.id);
  cancelled.delete(m.id);
  send({
    type: 'done',
    id: m.id,
    reason,
    ...(error ? { error } : {}),
    cached,
    evaluated: m.tokens.length - cached,
    slotTokens: seq ? [...seq.contextTokens] : [],
    ...(loaded !== undefined ? { loaded } : {}),
    ...(loadError !== undefined ? { loadError } : {}),
  });
}

async function prefill(m: Extract<ToChild, { type: 'prefill' }>): Promise<void> {
  const seq = sequences[m.slot];
  try {
    if (!seq) throw new Error(`no slot ${m.slot}`);
    const cached = Math.min(commonPrefix(seq.contextTokens, m.tokens), m.tokens.length);
    if (seq.nextTokenIndex > cached) await seq.eraseContextTokenRanges([{ start: cached, end: seq.nextTokenIndex }]);
    if (cached < m.tokens.length) await seq.evaluateWithoutGeneratingNewTokens(asTokens(m.tokens.slice(cached)));
    let saved: number | undefined;
    let saveError: string | undefined;
    if (m.saveTo !== undefined) {
      // A state that cannot be saved (disk full) does not fail the prefill: nothing is handed over.
      try {
        saved = (await seq.saveStateToFile(m.saveTo)).fileSize;
      } catch (e) {
        saveError = (e as Error).message;
      }
    }
    send({
      type: 'done',
      id: m.id,
      reason: 'stop',
      cached,
      evaluated: m.tokens.length - cached,
      slotTokens: [...seq.contextTokens],
      ...(saved !== undefined ? { saved } : {}),
      ...(saveError !== undefined ? { saveError } : {}),
    });
  } catch (e) {
    send({ type: 'failed', id: m.id, error: (e as Error).message });
  }
}

process.on('message', (m: ToChild) => {
  switch (m.type) {
    case 'load':
      void load(m);
      return;
    case 'generate':
      void generate(m);
      return;
    case 'prefill':
      void prefill(m);
      return;
    case 'cancel':
      // A cancel that crossed the request's end is dropped.
      if (running.has(m.id)) cancelled.add(m.id);
      return;
    case 'tokenize':
      if (!model) send({ type: 'failed', id: m.id, error: 'model not loaded' });
      else send({ type: 'tokens', id: m.id, tokens: [...model.tokenize(m.text)] });
      return;
    case 'detokenize':
      if (!model) send({ type: 'failed', id: m.id, error: 'model not loaded' });
      else send({ type: 'text', id: m.id, text: model.detokenize(asTokens(m.tokens)) });
      return;
  }
});
// The parent went away: nothing is left to serve.
process.on('disconnect', () => process.exit(0));
