/**
 * Requests for `dynamo-ts bench routing`: Mooncake-format traces and a synthetic shared-prefix
 * multi-turn workload, both as {@link BenchRequest}s whose prompts are built on demand.
 * @packageDocumentation
 */

/** One request to replay. */
export interface BenchRequest {
  /** Arrival time, ms from the start. */
  arrivalMs: number;
  /** Prompt length in tokens. */
  inputLength: number;
  /** Tokens to generate (at least 1). */
  outputLength: number;
  /** Builds the prompt's token ids (deterministic). */
  tokens(): Uint32Array;
}

/** One parsed line of a Mooncake trace. */
export interface MooncakeRecord {
  /** `timestamp`: arrival, ms. */
  timestamp: number;
  /** `input_length`: prompt tokens. */
  inputLength: number;
  /** `output_length`: generated tokens. */
  outputLength: number;
  /** `hash_ids`: one id per trace block of the prompt. */
  hashIds: number[];
}

/** Thrown for a malformed trace; the message names the source and line. */
export class TraceFormatError extends Error {
  /** Always `INVALID_ARGUMENT`. */
  readonly code = 'INVALID_ARGUMENT';
  constructor(
    message: string,
    /** 1-based line number. */
    readonly line: number,
  ) {
    super(message);
    this.name = 'TraceFormatError';
  }
}

/**
 * Parses a Mooncake-format trace: one JSON object a line with `timestamp` (ms), `input_length`,
 * `output_length` and `hash_ids` (one id per `traceBlockSize` tokens; `ceil(input_length /
 * traceBlockSize)` of them at least). Blank lines are skipped.
 * @param source name used in error messages (e.g. the file path)
 * @throws TraceFormatError naming the line and the field
 */
export function parseMooncakeTrace(text: string, traceBlockSize = 512, source = 'trace'): MooncakeRecord[] {
  const out: MooncakeRecord[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line.length === 0) continue;
    const where = `${source}:${i + 1}`;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      throw new TraceFormatError(`${where}: not valid JSON (${(e as Error).message})`, i + 1);
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      throw new TraceFormatError(`${where}: expected a JSON object`, i + 1);
    }
    const o = v as Record<string, unknown>;
    const num = (k: string, min: number): number => {
      const x = o[k];
      if (typeof x !== 'number' || !Number.isFinite(x) || x < min) {
        throw new TraceFormatError(`${where}: "${k}" must be a number >= ${min}, got ${JSON.stringify(x)}`, i + 1);
      }
      return x;
    };
    const timestamp = num('timestamp', 0);
    const inputLength = num('input_length', 1);
    const outputLength = num('output_length', 0);
    if (!Number.isInteger(inputLength) || !Number.isInteger(outputLength)) {
      throw new TraceFormatError(`${where}: "input_length" and "output_length" must be integers`, i + 1);
    }
    const ids = o['hash_ids'];
    if (!Array.isArray(ids) || !ids.every((h) => Number.isSafeInteger(h) && (h as number) >= 0)) {
      throw new TraceFormatError(`${where}: "hash_ids" must be an array of non-negative integers`, i + 1);
    }
    const need = Math.ceil(inputLength / traceBlockSize);
    if (ids.length < need) {
      throw new TraceFormatError(
        `${where}: "hash_ids" has ${ids.length} ids but input_length ${inputLength} needs ${need} blocks of ${traceBlockSize} tokens`,
        i + 1,
      );
    }
    out.push({ timestamp, inputLength, outputLength, hashIds: ids as number[] });
  }
  if (out.length === 0) throw new TraceFormatError(`${source}: no requests`, 0);
  return out;
}

/**
 * Fills `out[at..at+n)` with the tokens of hash id `id`: deterministic, the same for the same id
 * whatever the request or the seed (a shared id is a shared block).
 */
export function fillHashIdTokens(id: number, out: Uint32Array, at: number, n: number): void {
  let a = (Math.imul(id ^ 0x5bd1e995, 0x9e3779b1) + (Math.floor(id / 0x100000000) | 0)) >>> 0;
  for (let i = 0; i < n; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[at + i] = ((t ^ (t >>> 14)) >>> 0) % 128000;
  }
}

/** The requests of a parsed trace: each hash id expands to `traceBlockSize` tokens, the last block cut to `input_length`. */
export function traceRequests(records: readonly MooncakeRecord[], traceBlockSize = 512): BenchRequest[] {
  return records.map((r) => ({
    arrivalMs: r.timestamp,
    inputLength: r.inputLength,
    outputLength: Math.max(1, r.outputLength),
    tokens: () => {
      const out = new Uint32Array(r.inputLength);
      for (let b = 0; b * traceBlockSize < r.inputLength; b++) {
        const at = b * traceBlockSize;
        fillHashIdTokens(r.hashIds[b]!, out, at, Math.min(traceBlockSize, r.inputLength - at));
      }
      return out;
    },
  }));
}
