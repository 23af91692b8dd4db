/** Messages between a {@link EngineProcess} and its engine child (over the IPC channel of `fork`). */

/** Parent -> child. */
export type ToChild =
  | {
      type: 'load';
      modelPath: string;
      /** Load the vocabulary only (a tokenizer). */
      vocabOnly: boolean;
      slots: number;
      contextSize: number;
      threads: number;
    }
  | {
      type: 'generate';
      id: number;
      slot: number;
      /** The whole context the slot must hold before decoding. */
      tokens: number[];
      /** Most tokens to generate. */
      maxNewTokens: number;
      temperature: number;
      topP?: number;
      seed?: number;
      /** A checked sequence-state file (a prefill worker's) to load into the slot first. */
      loadState?: string;
    }
  | { type: 'cancel'; id: number }
  | { type: 'tokenize'; id: number; text: string }
  | { type: 'detokenize'; id: number; tokens: number[] }
  /** Holds the slot at `tokens` (evaluated, nothing generated): a prefill; `saveTo` saves its state there. */
  | { type: 'prefill'; id: number; slot: number; tokens: number[]; saveTo?: string };

/** Child -> parent. */
export type FromChild =
  | { type: 'ready'; contextLength: number; name: string; eos: number[] }
  | { type: 'load_failed'; error: string }
  | { type: 'tokens'; id: number; tokens: number[] }
  | { type: 'token'; id: number; token: number }
  | {
      type: 'done';
      id: number;
      reason: 'stop' | 'length' | 'cancelled' | 'error';
      error?: string;
      /** Prompt tokens reused from the slot's cache. */
      cached: number;
      /** Prompt tokens evaluated. */
      evaluated: number;
      /** What the slot holds now. */
      slotTokens: number[];
      /** Tokens loaded from `loadState` (0: it could not be loaded). */
      loaded?: number;
      /** Why `loadState` could not be loaded (the prompt was evaluated instead). */
      loadError?: string;
      /** Bytes of the state saved to `saveTo`. */
      saved?: number;
      /** Why the state could not be saved to `saveTo`. */
      saveError?: string;
    }
  | { type: 'text'; id: number; text: string }
  | { type: 'failed'; id: number; error: string };
