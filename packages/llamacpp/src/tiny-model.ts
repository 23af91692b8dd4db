/**
 * A tiny deterministic llama-architecture GGUF: random F32 weights, a few layers, and a
 * SentencePiece-style vocabulary (control tokens, the 256 byte-fallback tokens, ASCII characters
 * and prefixes of common English words) that llama.cpp's own tokenizer reads. For tests and
 * benchmarks: nothing downloads a model. Same options, same bytes.
 */
import { mulberry32 } from '@dynamo-ts/router';

/** Shape of the tiny model. */
export interface TinyModelOptions {
  /** PRNG seed of the weights. Default 1. */
  seed?: number;
  /** Transformer layers. Default 2. */
  layers?: number;
  /** Embedding width. Default 64. */
  embedding?: number;
  /** Attention heads. Default 4. */
  heads?: number;
  /** Feed-forward width. Default 128. */
  feedForward?: number;
  /** Context length the model declares. Default 4096. */
  contextLength?: number;
  /** `general.name`. Default `dynamo-tiny`. */
  name?: string;
}

const WORDS = (
  'the of and to in is that it was for on are as with his they at be this from have or by one had not but ' +
  'what all were when we there can an your which their said if do will each about how up out them then she ' +
  'many some so these would other into has more her two like him see time could no make than first been its ' +
  'who now people my made over did down only way find use may water long little very after words called just ' +
  'where most know get through back much before go good new write our used me man too any day same right ' +
  'look think also around another came come work three word must because does part even place well such here ' +
  'take why things help put years different away again off went old number great tell men say small every ' +
  'found still between name should home big give air line set own under read last never us left end along ' +
  'while might next sound below saw something thought both few those always looked show large often together ' +
  'asked house world going want school important until form food keep children feet land side without boy ' +
  'once animals life enough took sometimes four head above kind began almost live page got earth need far ' +
  'hand high year mother light parts country father let night following picture being study second eyes soon ' +
  'model token cache router worker prefix hello dynamo llama graph serve stream request answer question'
).split(' ');

/** Token pieces, scores and types of the vocabulary (ids are indexes). */
export function tinyVocabulary(): { tokens: string[]; scores: number[]; types: number[] } {
  const tokens: string[] = ['<unk>', '<s>', '</s>'];
  const types: number[] = [2, 3, 3];
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
    types.push(6);
  }
  const seen = new Set(tokens);
  const add = (piece: string): void => {
    if (seen.has(piece)) return;
    seen.add(piece);
    tokens.push(piece);
    types.push(1);
  };
  add('\u2581');
  for (let c = 33; c < 127; c++) add(String.fromCharCode(c));
  // Every prefix of "▁word", so SentencePiece's pairwise merges reach the whole word.
  for (const w of WORDS) for (let n = 2; n <= w.length + 1; n++) add(`\u2581${w}`.slice(0, n));
  // Longer pieces score higher, so merges prefer them; ties broken by id.
  const scores = tokens.map((t, i) => (types[i] === 1 ? -1000 + t.length * 10 - i / 10000 : 0));
  return { tokens, scores, types };
}

/** A small, fast, seedable PRNG (uniform in [0, 1)): the router's mulberry32. */
export const prng = mulberry32;

const T_UINT32 = 4;
const T_INT32 = 5;
const T_FLOAT32 = 6;
const T_BOOL = 7;
const T_STRING = 8;
const T_ARRAY = 9;
const ALIGN = 32;

type Meta =
  | { t: 'u32'; v: number }
  | { t: 'f32'; v: number }
  | { t: 'bool'; v: boolean }
  | { t: 'str'; v: string }
  | { t: 'strs'; v: string[] }
  | { t: 'f32s'; v: number[] }
  | { t: 'i32s'; v: number[] };

/** Grows a little-endian byte buffer. */
class Writer {
  private buf = Buffer.alloc(1 << 16);
  length = 0;
  private room(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const next = Buffer.alloc(Math.max(this.buf.length * 2, this.length + n));
    this.buf.copy(next, 0, 0, this.length);
    this.buf = next;
  }
  u32(v: number): void {
    this.room(4);
    this.length = this.buf.writeUInt32LE(v, this.length);
  }
  i32(v: number): void {
    this.room(4);
    this.length = this.buf.writeInt32LE(v, this.length);
  }
  u64(v: number): void {
    this.room(8);
    this.length = this.buf.writeBigUInt64LE(BigInt(v), this.length);
  }
  f32(v: number): void {
    this.room(4);
    this.length = this.buf.writeFloatLE(v, this.length);
  }
  u8(v: number): void {
    this.room(1);
    this.buf[this.length++] = v;
  }
  str(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.length);
    this.room(b.length);
    b.copy(this.buf, this.length);
    this.length += b.length;
  }
  pad(): void {
    while (this.length % ALIGN) this.u8(0);
  }
  bytes(): Buffer {
    return this.buf.subarray(0, this.length);
  }
}

function writeMeta(w: Writer, key: string, m: Meta): void {
  w.str(key);
  switch (m.t) {
    case 'u32':
      w.u32(T_UINT32);
      w.u32(m.v);
      return;
    case 'f32':
      w.u32(T_FLOAT32);
      w.f32(m.v);
      return;
    case 'bool':
      w.u32(T_BOOL);
      w.u8(m.v ? 1 : 0);
      return;
    case 'str':
      w.u32(T_STRING);
      w.str(m.v);
      return;
    case 'strs':
      w.u32(T_ARRAY);
      w.u32(T_STRING);
      w.u64(m.v.length);
      for (const s of m.v) w.str(s);
      return;
    case 'f32s':
      w.u32(T_ARRAY);
      w.u32(T_FLOAT32);
      w.u64(m.v.length);
      for (const x of m.v) w.f32(x);
      return;
    case 'i32s':
      w.u32(T_ARRAY);
      w.u32(T_INT32);
      w.u64(m.v.length);
      for (const x of m.v) w.i32(x);
      return;
  }
}

/** The GGUF bytes of the tiny model. */
export function tinyModel(o: TinyModelOptions = {}): Buffer {
  const seed = o.seed ?? 1;
  const layers = o.layers ?? 2;
  const embd = o.embedding ?? 64;
  const heads = o.heads ?? 4;
  const ff = o.feedForward ?? 128;
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new RangeError(`seed ${seed}: need 0..2^32-1`);
  if (embd % heads) throw new RangeError(`embedding ${embd} is not a multiple of heads ${heads}`);
  const vocab = tinyVocabulary();
  const nVocab = vocab.tokens.length;
  const rand = prng(seed);

  interface Tensor {
    name: string;
    dims: number[];
    data: Float32Array;
  }
  const tensors: Tensor[] = [];
  const random = (name: string, dims: number[], scale: number): void => {
    const n = dims.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = (rand() * 2 - 1) * scale;
    tensors.push({ name, dims, data });
  };
  const ones = (name: string, n: number): void => {
    tensors.push({ name, dims: [n], data: new Float32Array(n).fill(1) });
  };
  random('token_embd.weight', [embd, nVocab], 1);
  for (let l = 0; l < layers; l++) {
    const p = `blk.${l}.`;
    ones(`${p}attn_norm.weight`, embd);
    random(`${p}attn_q.weight`, [embd, embd], 0.5);
    random(`${p}attn_k.weight`, [embd, embd], 0.5);
    random(`${p}attn_v.weight`, [embd, embd], 0.5);
    random(`${p}attn_output.weight`, [embd, embd], 0.1);
    ones(`${p}ffn_norm.weight`, embd);
    random(`${p}ffn_gate.weight`, [embd, ff], 0.3);
    random(`${p}ffn_up.weight`, [embd, ff], 0.3);
    random(`${p}ffn_down.weight`, [ff, embd], 0.1);
  }
  ones('output_norm.weight', embd);
  random('output.weight', [embd, nVocab], 1);
  // Control and byte tokens never win greedy decoding: answers are readable pieces of words.
  const out = tensors[tensors.length - 1]!.data;
  for (let t = 0; t < nVocab; t++) if (vocab.types[t] !== 1) out.fill(-0.2, t * embd, (t + 1) * embd);

  const meta: [string, Meta][] = [
    ['general.architecture', { t: 'str', v: 'llama' }],
    ['general.name', { t: 'str', v: o.name ?? 'dynamo-tiny' }],
    ['general.file_type', { t: 'u32', v: 0 }],
    ['general.alignment', { t: 'u32', v: ALIGN }],
    ['llama.context_length', { t: 'u32', v: o.contextLength ?? 4096 }],
    ['llama.embedding_length', { t: 'u32', v: embd }],
    ['llama.block_count', { t: 'u32', v: layers }],
    ['llama.feed_forward_length', { t: 'u32', v: ff }],
    ['llama.attention.head_count', { t: 'u32', v: heads }],
    ['llama.attention.head_count_kv', { t: 'u32', v: heads }],
    ['llama.attention.layer_norm_rms_epsilon', { t: 'f32', v: 1e-5 }],
    ['llama.rope.dimension_count', { t: 'u32', v: embd / heads }],
    ['llama.rope.freq_base', { t: 'f32', v: 10000 }],
    ['llama.vocab_size', { t: 'u32', v: nVocab }],
    ['tokenizer.ggml.model', { t: 'str', v: 'llama' }],
    ['tokenizer.ggml.tokens', { t: 'strs', v: vocab.tokens }],
    ['tokenizer.ggml.scores', { t: 'f32s', v: vocab.scores }],
    ['tokenizer.ggml.token_type', { t: 'i32s', v: vocab.types }],
    ['tokenizer.ggml.unknown_token_id', { t: 'u32', v: 0 }],
    ['tokenizer.ggml.bos_token_id', { t: 'u32', v: 1 }],
    ['tokenizer.ggml.eos_token_id', { t: 'u32', v: 2 }],
    ['tokenizer.ggml.add_bos_token', { t: 'bool', v: true }],
    ['tokenizer.ggml.add_eos_token', { t: 'bool', v: false }],
  ];

  const w = new Writer();
  w.u32(0x46554747); // "GGUF"
  w.u32(3);
  w.u64(tensors.length);
  w.u64(meta.length);
  for (const [k, m] of meta) writeMeta(w, k, m);
  let offset = 0;
  for (const t of tensors) {
    w.str(t.name);
    w.u32(t.dims.length);
    for (const d of t.dims) w.u64(d);
    w.u32(0); // F32
    w.u64(offset);
    offset += t.data.byteLength;
    offset = Math.ceil(offset / ALIGN) * ALIGN;
  }
  w.pad();
  const head = w.bytes();
  const body = Buffer.alloc(offset);
  let at = 0;
  for (const t of tensors) {
    Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).copy(body, at);
    at = Math.ceil((at + t.data.byteLength) / ALIGN) * ALIGN;
  }
  return Buffer.concat([head, body]);
}

/** Checks the first 24 bytes of a file are a GGUF v2/v3 header; throws naming what is wrong. */
export function ggufHeaderCheck(head: Buffer): void {
  if (head.length < 24 || head.readUInt32LE(0) !== 0x46554747) throw new Error('not a GGUF file (bad magic)');
  const version = head.readUInt32LE(4);
  if (version < 2 || version > 3) throw new Error(`unsupported GGUF version ${version}`);
}
