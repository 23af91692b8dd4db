import { join } from 'node:path';
import { loadHfTokenizer } from '../src/hf-tokenizer';
import { parseChunk, readEngineMetrics } from '../src/engine-http';
import { engineTarget, type VllmWorkerConfig } from '../src/worker';

const TOKENIZER = join(__dirname, '..', '..', '..', 'examples', 'vllm', 'test', 'fixtures', 'tiny-tokenizer');

describe('engine /metrics', () => {
  it('reads vLLM names (current and older) and the cache config', () => {
    const m = readEngineMetrics(
      [
        '# HELP vllm:num_requests_waiting x',
        'vllm:num_requests_waiting{engine="0",model_name="m"} 3.0',
        'vllm:num_requests_waiting{engine="1",model_name="m"} 2.0',
        'vllm:num_requests_running{engine="0",model_name="m"} 4.0',
        'vllm:gpu_cache_usage_perc{model_name="m"} 0.25',
        'vllm:cache_config_info{block_size="32",num_gpu_blocks="4096",cache_dtype="auto"} 1.0',
      ].join('\n'),
    );
    expect(m).toEqual({ waiting: 5, running: 4, usage: 0.25, blockSize: 32, totalBlocks: 4096 });
  });
  it("reads SGLang's names and ignores garbage lines", () => {
    const m = readEngineMetrics(
      'sglang:num_queue_reqs{a="b"} 7\nsglang:token_usage 0.5\n{{{ nonsense\nsglang:num_running_reqs NaN',
    );
    expect(m).toEqual({ waiting: 7, running: 0, usage: 0.5 });
  });
});

describe('completion stream chunks', () => {
  it('takes token ids and maps finish reasons', () => {
    expect(parseChunk('e', '{"choices":[{"index":0,"text":"a","token_ids":[5,6],"finish_reason":null}]}')).toEqual({
      tokenIds: [5, 6],
    });
    expect(parseChunk('e', '{"choices":[{"token_ids":[7],"finish_reason":"length"}]}')).toEqual({
      tokenIds: [7],
      finishReason: 'length',
    });
    expect(parseChunk('e', '{"choices":[{"text":"","finish_reason":"abort"}]}')).toEqual({
      tokenIds: [],
      finishReason: 'stop',
    });
    expect(parseChunk('e', '{"choices":[]}')).toBeUndefined();
  });
  it('refuses what it cannot trust, naming the cause', () => {
    expect(() => parseChunk('e', 'not json')).toThrow(/not JSON/);
    expect(() => parseChunk('e', '{"choices":[{"token_ids":[-1]}]}')).toThrow(/return_token_ids/);
    expect(() => parseChunk('e', '{"error":{"message":"boom"}}')).toThrow(/boom/);
  });
});

describe('adapter config', () => {
  const base = {
    kv_topic: '',
    dp_size: 1,
    metrics_interval_ms: 1000,
    health_interval_ms: 1000,
    probe_timeout_ms: 1000,
    engine: 'auto' as const,
    kv_ingest: 'adapter' as const,
  };
  it('picks the engine of each replica and checks the lists', () => {
    const cfg: VllmWorkerConfig = {
      ...base,
      engines: 'http://a:1,http://b:2/',
      kv_events: 'tcp://a:5557,tcp://b:5557',
    };
    expect(engineTarget(cfg, 1)).toEqual({ url: 'http://b:2', kvEvents: 'tcp://b:5557', kvReplay: undefined });
    expect(() => engineTarget({ ...cfg, kv_events: 'tcp://a:5557' }, 0)).toThrow(
      /kv_events lists 1 endpoints for 2 engines/,
    );
    expect(() => engineTarget({ ...base, url: 'ftp://x' }, 0)).toThrow(/--VllmWorker.url must be http/);
    expect(() => engineTarget({ ...base, url: 'http://a:1,http://b:2' }, 0)).toThrow(/--VllmWorker.engines/);
  });
});

describe('HF tokenizer from a local tokenizer.json', () => {
  it('renders a chat through the template, encodes raw prompts raw, and decodes a stream back to the text', () => {
    const t = loadHfTokenizer(TOKENIZER);
    // <s> <|user|> tell me a joke <|assistant|>: the template writes the special tokens.
    expect(t.encodeChat!([{ role: 'user', content: 'Tell me a joke' }])).toEqual([0, 3, 7, 8, 9, 10, 4]);
    // A completion's prompt: no template (this tokenizer adds no special tokens of its own).
    expect(t.encode('Tell me a joke')).toEqual([7, 8, 9, 10]);
    expect(t.applyChatTemplate([{ role: 'user', content: 'hi' }])).toBe('<s><|user|> hi <|assistant|>');
    const d = t.decoder();
    let text = '';
    for (const id of [5, 6, 22, 1]) text += d.push(id);
    expect(text + d.flush()).toBe('hello world!');
    const raw = loadHfTokenizer(join(TOKENIZER, 'tokenizer.json'), { chatTemplate: false });
    expect(raw.encode('hello world')).toEqual([5, 6]);
    expect(raw.encodeChat).toBeUndefined();
  });
  it('names the path it cannot load', () => {
    expect(() => loadHfTokenizer('/nonexistent/tok.json')).toThrow(/\/nonexistent\/tok.json does not exist/);
  });
});
