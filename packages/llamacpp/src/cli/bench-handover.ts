import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { EngineHost, KvStateRef } from '@dynamo-ts/llm';
import { createLogger, type Logger } from '@dynamo-ts/runtime';
import { EngineProcess } from '../engine-process';
import { TransferDir, modelFingerprint } from '../kv-handover';
import { prng } from '../tiny-model';
import { startLlamaEngine, type LlamaEngine } from '../worker';
import { fakeContext, percentile, round } from './bench-engines';

/** Options of {@link runHandoverBench}. */
export interface HandoverBenchOptions {
  model: string;
  /** Requests per mode (each a fresh prompt: nothing is reused from a slot). */
  requests: number;
  /** Words of each prompt. */
  promptWords: number;
  outputTokens: number;
  seed: number;
  logger?: Logger;
  onProgress?(done: number, total: number): void;
}

/** One mode's numbers (`off`: the decode engine evaluates the prompt again; `on`: it loads the state). */
export interface HandoverBenchResult {
  mode: 'off' | 'on';
  requests: number;
  prompt_tokens: number;
  /** Prompt tokens the decode engine evaluated, per request. */
  decode_evaluated_per_request: number;
  prefill_ms_p50: number;
  /** From the prefill's end to the decode engine's first token (hand-over + decode-side prefill). */
  decode_ttft_ms_p50: number;
  /** From the request to its first token (prefill worker + hand-over + decode). */
  ttft_ms_p50: number;
  state_bytes: number;
}

const WORDS = 'the model cache router worker prefix hello world stream request answer question token graph serve'.split(
  ' ',
);

/**
 * A disaggregated request without the graph around it, on real engines: a prefill engine
 * evaluates the prompt, then the decode engine (the llama.cpp worker's engine, one slot)
 * generates; with the handover off it evaluates the prompt again, on it loads the saved state
 * through a transfer directory. Sequential requests, a fresh prompt each, both modes interleaved.
 */
export async function runHandoverBench(o: HandoverBenchOptions): Promise<HandoverBenchResult[]> {
  const logger = o.logger ?? createLogger({ level: 'error' });
  const rand = prng(o.seed);
  const modes = ['off', 'on'] as const;
  // A fresh prompt per request and mode, so the decode slot never holds a previous one.
  const texts = Array.from({ length: o.requests * modes.length }, () =>
    Array.from({ length: o.promptWords }, () => WORDS[Math.floor(rand() * WORDS.length)]).join(' '),
  );
  const model = await modelFingerprint(o.model);
  const root = mkdtempSync(path.join(tmpdir(), 'bench-handover-'));
  const dir = new TransferDir(root, { kv_transfer_max_bytes: 1 << 30, kv_transfer_ttl_ms: 600_000 }, logger);
  await dir.open();
  const prefill = new EngineProcess({ modelPath: o.model, slots: 1, contextSize: 4096, logger });
  const host: EngineHost = {
    workerId: 'decode',
    workerName: 'decode',
    blockSize: 16,
    totalBlocks: 1 << 20,
    logger,
    publishKvEvent: () => undefined,
    publishLoad: () => undefined,
    loadChanged: () => undefined,
  };
  const cfg = { model: o.model, model_name: '', slots: 1, context_size: 4096, threads: 1, restart_delay_ms: 100 };
  let decode: LlamaEngine | undefined;
  try {
    decode = await startLlamaEngine(host, { ...cfg, kv_transfer_dir: root }, 'model', { namespace: 'bench' });
    await prefill.start();
    const prompts = await Promise.all(texts.map((t) => prefill.tokenize(t)));
    const acc = modes.map((mode) => ({
      mode,
      prefillMs: [] as number[],
      decodeMs: [] as number[],
      ttft: [] as number[],
      bytes: 0,
      promptTokens: 0,
      evaluated: 0,
    }));
    let done = 0;
    for (let i = 0; i < o.requests; i++) {
      // Interleaved, the order alternating, so a machine's load drift hits both modes alike.
      for (const m of i % 2 ? [1, 0] : [0, 1]) {
        const a = acc[m]!;
        const tokens = prompts[i * modes.length + m]!;
        a.promptTokens += tokens.length;
        const t0 = performance.now();
        const saveTo = a.mode === 'on' ? dir.tempPath() : undefined;
        await prefill.request<void>(
          (id) => ({ type: 'prefill', id, slot: 0, tokens, ...(saveTo ? { saveTo } : {}) }),
          (msg, ok, fail) =>
            msg.type === 'done' ? ok() : msg.type === 'failed' ? fail(new Error(msg.error)) : undefined,
        ).done;
        let ref: KvStateRef | undefined;
        if (saveTo) {
          ref = await dir.publish(saveTo, tokens.length, model);
          a.bytes += ref?.bytes ?? 0;
        }
        const t1 = performance.now();
        a.prefillMs.push(t1 - t0);
        const before = decode.stats.evaluatedPromptTokens;
        let first = true;
        for await (const step of decode.generate(
          {
            requestId: `r${i}-${a.mode}`,
            promptTokenIds: tokens,
            generatedTokenIds: [],
            contextTokenIds: tokens,
            maxNewTokens: o.outputTokens,
            temperature: 0,
            prefilledRemotely: true,
            ...(ref ? { prefilledKv: ref } : {}),
          },
          fakeContext(),
        )) {
          if (!step.tokenIds.length || !first) continue;
          first = false;
          const now = performance.now();
          a.decodeMs.push(now - t1);
          a.ttft.push(now - t0);
        }
        a.evaluated += decode.stats.evaluatedPromptTokens - before;
        o.onProgress?.(++done, o.requests * modes.length);
      }
    }
    return acc.map((a) => ({
      mode: a.mode,
      requests: o.requests,
      prompt_tokens: a.promptTokens,
      decode_evaluated_per_request: round(a.evaluated / o.requests, 1),
      prefill_ms_p50: round(percentile(a.prefillMs, 50)),
      decode_ttft_ms_p50: round(percentile(a.decodeMs, 50)),
      ttft_ms_p50: round(percentile(a.ttft, 50)),
      state_bytes: Math.round(a.bytes / o.requests),
    }));
  } finally {
    await Promise.all([prefill.close(), decode?.close?.()]);
    dir.close();
    rmSync(root, { recursive: true, force: true });
  }
}

/** The results as a text table, with the on/off ratios. */
export function formatHandoverTable(rs: HandoverBenchResult[]): string {
  const head = ['handover', 'requests', 'prompt tok', 'decode eval/req', 'prefill p50 ms', 'decode ttft p50 ms'];
  head.push('ttft p50 ms', 'state KB');
  const rows = rs.map((r) => [
    r.mode,
    String(r.requests),
    String(Math.round(r.prompt_tokens / Math.max(1, r.requests))),
    r.decode_evaluated_per_request.toFixed(1),
    r.prefill_ms_p50.toFixed(2),
    r.decode_ttft_ms_p50.toFixed(2),
    r.ttft_ms_p50.toFixed(2),
    (r.state_bytes / 1024).toFixed(0),
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padStart(w[i]!)).join('  ');
  const out = [line(head), ...rows.map(line)];
  const off = rs.find((r) => r.mode === 'off');
  const on = rs.find((r) => r.mode === 'on');
  if (off && on && off.decode_ttft_ms_p50 > 0 && off.ttft_ms_p50 > 0)
    out.push(
      `on/off: decode ttft ${(on.decode_ttft_ms_p50 / off.decode_ttft_ms_p50).toFixed(2)}x, ` +
        `ttft ${(on.ttft_ms_p50 / off.ttft_ms_p50).toFixed(2)}x`,
    );
  return out.join('\n');
}
