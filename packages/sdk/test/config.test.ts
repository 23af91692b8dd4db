import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  checkSections,
  defineService,
  loadConfigFile,
  MAX_CONFIG_FILE_BYTES,
  mergeConfig,
  serviceConfig,
} from '@dynamo-ts/sdk';

const Worker = defineService<{ token_delay_ms: number; model: string }>({
  name: 'Worker',
  configSchema: {
    properties: {
      token_delay_ms: { type: 'integer', minimum: 0, default: 0 },
      model: { type: 'string', default: 'hello-world' },
    },
  },
  create: () => ({}),
});

function tmpFile(name: string, text: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'dyn-cfg-'));
  const f = path.join(dir, name);
  writeFileSync(f, text);
  return f;
}

describe('config', () => {
  it('loads YAML sections and applies defaults', () => {
    const f = tmpFile('a.yaml', 'Worker:\n  token_delay_ms: 5\n  replicas: 2\n');
    const cfg = serviceConfig<{ token_delay_ms: number; model: string }>(Worker, loadConfigFile(f), f);
    expect(cfg).toEqual({ token_delay_ms: 5, model: 'hello-world', replicas: 2 });
  });

  it('lets later layers (command-line overrides) win', () => {
    const merged = mergeConfig({ Worker: { token_delay_ms: 5, model: 'a' } }, { Worker: { token_delay_ms: 7 } });
    expect(merged).toEqual({ Worker: { token_delay_ms: 7, model: 'a' } });
  });

  it('names the source, the key and the expected type on a wrong type', () => {
    expect(() => serviceConfig(Worker, { Worker: { token_delay_ms: 'fast' } }, 'configs/agg.yaml')).toThrow(
      'configs/agg.yaml: Worker.token_delay_ms must be of type integer',
    );
  });

  it('rejects unknown keys by name', () => {
    expect(() => serviceConfig(Worker, { Worker: { token_dealy_ms: 1 } }, 'flags')).toThrow(
      'flags: Worker.token_dealy_ms is not a known key',
    );
  });

  it('rejects a negative replica count', () => {
    expect(() => serviceConfig(Worker, { Worker: { replicas: -1 } }, 'f')).toThrow(/Worker.replicas must be >= 0/);
  });

  it('names the file when it is not valid YAML or not a mapping', () => {
    const bad = tmpFile('bad.yaml', 'Worker: [1, 2\n');
    expect(() => loadConfigFile(bad)).toThrow(/bad.yaml is not valid YAML/);
    const list = tmpFile('list.yaml', '- 1\n- 2\n');
    expect(() => loadConfigFile(list)).toThrow(/list.yaml: expected a mapping/);
    const scalar = tmpFile('scalar.yaml', 'Worker: 3\n');
    expect(() => loadConfigFile(scalar)).toThrow(/section Worker must be a mapping/);
    expect(() => loadConfigFile('/nonexistent/x.yaml')).toThrow(/cannot read config file \/nonexistent\/x.yaml/);
  });

  it('bounds durations by what Node timers honour (a larger one used to fire at once)', () => {
    const Front = defineService({
      name: 'Front',
      configSchema: {
        properties: {
          request_timeout_ms: { type: 'integer', minimum: 0, default: 0 },
          drain_s: { type: 'number', minimum: 0 },
          short_ms: { type: 'integer', maximum: 100 },
        },
      },
      create: () => ({}),
    });
    expect(() => serviceConfig(Front, { Front: { request_timeout_ms: 3_000_000_000 } }, 'flags')).toThrow(
      'flags: Front.request_timeout_ms must be <= 2147483647',
    );
    expect(() => serviceConfig(Front, { Front: { drain_s: 1e7 } }, 'flags')).toThrow(
      /Front.drain_s must be <= 2147483/,
    );
    expect(() => serviceConfig(Front, { Front: { short_ms: 101 } }, 'flags')).toThrow(/must be <= 100/);
    expect(serviceConfig(Front, { Front: { request_timeout_ms: 2 ** 31 - 1 } }, 'flags')).toMatchObject({
      request_timeout_ms: 2 ** 31 - 1,
    });
  });

  it('refuses a config file over the size limit before parsing it', () => {
    const f = tmpFile('big.yaml', `Worker:\n  model: "${'x'.repeat(MAX_CONFIG_FILE_BYTES)}"\n`);
    expect(() => loadConfigFile(f)).toThrow(new RegExp(`config file .*big.yaml is \\d+ bytes, over the limit`));
  });

  it('names sections that are no service of the graph: any in flags, near misses in a shared file', () => {
    const known = ['DummyWorker', 'Frontend'];
    expect(() => checkSections({ DummyWorker: {}, Wroker: {}, Fronted: {} }, known, 'flags', true)).toThrow(
      'flags: Wroker is not a service of this graph; Fronted is not a service of this graph (did you mean Frontend?) (services: DummyWorker, Frontend)',
    );
    expect(() => checkSections({ DummyWorkr: {} }, known, 'a.yaml', false)).toThrow(
      'a.yaml: DummyWorkr is not a service of this graph (did you mean DummyWorker?)',
    );
    expect(() => checkSections({ frontend: {} }, known, 'a.yaml', false)).toThrow(/did you mean Frontend/);
    // A shared file names services of other processes of the graph.
    expect(() => checkSections({ DummyWorker: {}, Router: {}, Processor: {} }, known, 'a.yaml', false)).not.toThrow();
    expect(() => checkSections({ DummyWorker: {} }, known, 'flags', true)).not.toThrow();
  });

  it('does not mutate the given config', () => {
    const cfg = { Worker: { token_delay_ms: 1 } };
    serviceConfig(Worker, cfg, 'f');
    expect(cfg).toEqual({ Worker: { token_delay_ms: 1 } });
  });
});
