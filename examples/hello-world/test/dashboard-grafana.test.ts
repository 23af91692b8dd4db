import fs from 'node:fs';
import path from 'node:path';
import Ajv from 'ajv';
import { parse as parseYaml } from 'yaml';
import { dashboard } from '@dynamo-ts/runtime';

/**
 * deploy/grafana: the dashboard JSON against the JSON schema written from Grafana's documented
 * dashboard model (deploy/grafana/dashboard.schema.json; no maintained schema package exists on
 * npm), its queries against the metrics the code defines (a rename breaks this test), and the
 * provisioning, Prometheus and compose files against each other.
 */

const ROOT = path.join(__dirname, '..', '..', '..');
const GRAFANA = path.join(ROOT, 'deploy', 'grafana');
const readJson = (p: string): unknown => JSON.parse(fs.readFileSync(p, 'utf8'));
const readYaml = (p: string): unknown => parseYaml(fs.readFileSync(p, 'utf8'));

interface Target {
  refId: string;
  expr: string;
  datasource?: { uid: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { type: string; uid: string };
  targets?: Target[];
}
interface Dashboard {
  uid: string;
  panels: Panel[];
  templating: { list: Array<{ name: string; type: string; query?: string; current?: { value?: string } }> };
}

const board = readJson(path.join(GRAFANA, 'dashboards', 'dynamo-ts.json')) as Dashboard;

/** The `dynamo_*` metric names the code defines (`name: '...'` in the sources), and which are histograms. */
function definedMetrics(): { all: Set<string>; histograms: Set<string> } {
  const all = new Set<string>();
  const histograms = new Set<string>();
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      if (['node_modules', 'dist', 'test', 'bench', 'coverage'].includes(e.name)) continue;
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) {
        const src = fs.readFileSync(p, 'utf8');
        for (const m of src.matchAll(/\bname:\s*'(dynamo_[a-z0-9_]+)'/g)) all.add(m[1]!);
        for (const m of src.matchAll(/\bhistogram\(\{\s*name:\s*'(dynamo_[a-z0-9_]+)'/g)) histograms.add(m[1]!);
      }
    }
  };
  walk(path.join(ROOT, 'packages'));
  walk(path.join(ROOT, 'examples'));
  return { all, histograms };
}

/** Why `name` (as a query uses it) is not a series the code exports, or undefined when it is. */
function unknownSeries(name: string, defs: ReturnType<typeof definedMetrics>): string | undefined {
  const suffix = /_(bucket|sum|count)$/.exec(name);
  if (suffix && defs.histograms.has(name.slice(0, -suffix[0].length))) return undefined;
  if (defs.histograms.has(name)) return `${name} is a histogram: query its _bucket, _sum or _count`;
  return defs.all.has(name) ? undefined : `${name} is defined nowhere in packages/ or examples/`;
}

describe('deploy/grafana dashboard', () => {
  it('validates against the dashboard schema', () => {
    const ajv = new Ajv({ allErrors: true, strict: false });
    const validate = ajv.compile(readJson(path.join(GRAFANA, 'dashboard.schema.json')) as object);
    const ok = validate(board);
    expect(validate.errors ?? []).toEqual([]);
    expect(ok).toBe(true);
  });

  it('the schema refuses what Grafana would load broken', () => {
    const ajv = new Ajv({ allErrors: true, strict: false });
    const validate = ajv.compile(readJson(path.join(GRAFANA, 'dashboard.schema.json')) as object);
    const broken = (mutate: (d: Dashboard) => void): boolean => {
      const d = structuredClone(board);
      mutate(d);
      return validate(d);
    };
    expect(broken(() => undefined)).toBe(true);
    expect(broken((d) => (d.panels[1]!.type = 'graphh'))).toBe(false);
    expect(broken((d) => (d.panels[1]!.targets![0]!.expr = ''))).toBe(false);
    expect(broken((d) => (d.panels[1]!.gridPos.w = 25))).toBe(false);
    expect(broken((d) => delete (d as Partial<Dashboard>).templating)).toBe(false);
  });

  it('lays panels on the 24-column grid without overlaps, ids and refIds unique', () => {
    const ids = board.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const cells = new Set<string>();
    for (const p of board.panels) {
      const { x, y, w, h } = p.gridPos;
      expect(x + w).toBeLessThanOrEqual(24);
      for (let i = x; i < x + w; i++)
        for (let j = y; j < y + h; j++) {
          const key = `${i},${j}`;
          if (cells.has(key)) throw new Error(`panel "${p.title}" overlaps another at ${key}`);
          cells.add(key);
        }
      const refs = (p.targets ?? []).map((t) => t.refId);
      expect(new Set(refs).size).toBe(refs.length);
    }
  });

  it('queries only metrics the code defines, through the datasource variable', () => {
    const defs = definedMetrics();
    expect(defs.all.has('dynamo_frontend_requests_total')).toBe(true); // the scan finds definitions
    expect(unknownSeries('dynamo_frontend_requests_totl', defs)).toMatch(/defined nowhere/); // a rename
    expect(unknownSeries('dynamo_frontend_time_to_first_token_seconds', defs)).toMatch(/histogram/);
    expect(unknownSeries('dynamo_frontend_requests_total_bucket', defs)).toMatch(/defined nowhere/);
    const variable = board.templating.list.find((v) => v.type === 'datasource');
    expect(variable).toMatchObject({ name: 'datasource', query: 'prometheus' });
    const problems: string[] = [];
    const used = new Set<string>();
    for (const p of board.panels) {
      if (p.type === 'row') continue;
      expect(p.datasource).toEqual({ type: 'prometheus', uid: '${datasource}' });
      for (const t of p.targets ?? []) {
        const names = t.expr.match(/\bdynamo_[a-z0-9_]+\b/g) ?? [];
        if (names.length === 0) problems.push(`"${p.title}" ${t.refId}: no dynamo_* metric in ${t.expr}`);
        for (const n of names) {
          used.add(n.replace(/_(bucket|sum|count)$/, ''));
          const why = unknownSeries(n, defs);
          if (why) problems.push(`"${p.title}" ${t.refId}: ${why}`);
        }
      }
    }
    expect(problems).toEqual([]);
    // What the issue asks the dashboard to show.
    for (const n of [
      'dynamo_frontend_requests_total',
      'dynamo_frontend_time_to_first_token_seconds',
      'dynamo_frontend_inter_token_latency_seconds',
      'dynamo_frontend_inflight_requests',
      'dynamo_router_decisions_total',
      'dynamo_router_overlap_blocks',
      'dynamo_worker_kv_usage_ratio',
      'dynamo_worker_active_blocks',
      'dynamo_prefill_queue_depth',
    ])
      expect(used).toContain(n);
  });

  it("the live dashboard's metric names are defined in the code too", () => {
    const defs = definedMetrics();
    for (const n of Object.values(dashboard.DASHBOARD_METRICS)) expect(defs.all).toContain(n);
  });
});

describe('deploy/grafana provisioning, Prometheus and compose', () => {
  const compose = readYaml(path.join(ROOT, 'deploy', 'docker-compose.yml')) as {
    services: Record<string, { profiles?: string[]; volumes?: string[]; image?: string }>;
    volumes: Record<string, unknown>;
  };

  it('compose starts Prometheus and Grafana under the observability profile, mounting files that exist', () => {
    for (const name of ['prometheus', 'grafana']) {
      const s = compose.services[name]!;
      expect(s.profiles).toEqual(['observability']);
      expect(s.image).toMatch(/^[a-z/]+:v?\d+\.\d+\.\d+$/); // a pinned version
      for (const volume of s.volumes ?? []) {
        // The compose default of the variable, as `docker compose` substitutes it.
        const v = volume.replace('${DYNAMO_PROMETHEUS_CONFIG:-prometheus-2node.yml}', 'prometheus-2node.yml');
        const [src] = v.split(':');
        if (!src!.startsWith('.')) {
          expect(compose.volumes).toHaveProperty([src!]);
          continue;
        }
        expect(fs.existsSync(path.join(ROOT, 'deploy', src!))).toBe(true);
      }
    }
    // NATS and etcd stay in the default profile.
    expect(compose.services.nats!.profiles).toBeUndefined();
  });

  it('Grafana provisions the Prometheus datasource the dashboard selects and loads the mounted dashboards', () => {
    const ds = readYaml(path.join(GRAFANA, 'provisioning', 'datasources', 'prometheus.yml')) as {
      datasources: Array<{ uid: string; type: string; url: string }>;
    };
    const variable = board.templating.list.find((v) => v.name === 'datasource')!;
    expect(ds.datasources).toEqual([
      expect.objectContaining({ uid: variable.current!.value, type: 'prometheus', url: 'http://prometheus:9090' }),
    ]);
    const providers = readYaml(path.join(GRAFANA, 'provisioning', 'dashboards', 'dynamo-ts.yml')) as {
      providers: Array<{ options: { path: string } }>;
    };
    const mount = compose.services.grafana!.volumes!.find((v) => v.startsWith('./grafana/dashboards:'))!;
    expect(mount.split(':')[1]).toBe(providers.providers[0]!.options.path);
  });

  it.each([
    ['prometheus-2node.yml', ['node1:8000', 'node1:9091', 'node2:9091']],
    ['prometheus-3node.yml', ['node1:8000', 'node1:9091', 'node2:9091', 'node3:9091']],
  ])('%s scrapes the deployment: frontend on DYNAMO_PORT, workers on DYNAMO_METRICS_PORT', (file, want) => {
    const cfg = readYaml(path.join(GRAFANA, 'prometheus', file)) as {
      scrape_configs: Array<{ job_name: string; metrics_path: string; static_configs: Array<{ targets: string[] }> }>;
    };
    const jobs = cfg.scrape_configs.map((j) => j.job_name);
    expect(new Set(jobs).size).toBe(jobs.length);
    for (const j of cfg.scrape_configs) expect(j.metrics_path).toBe('/metrics');
    const targets = cfg.scrape_configs.flatMap((j) => j.static_configs.flatMap((s) => s.targets));
    expect(targets.sort()).toEqual([...want].sort());
  });
});
