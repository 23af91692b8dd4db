/**
 * The figures of a fault-injection run: one row per case, recorded by the test files into a
 * per-run folder and gathered by the global teardown into a table (stderr) and
 * `test/faults/.last-run.json`.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { LoadTally } from './harness';

/** One case's figures. */
export interface FaultRow extends LoadTally {
  /** Case name, e.g. `kill -9 one of two workers`. */
  case: string;
  /** Passed or failed (a row is recorded even when its assertions then fail). */
  passed: boolean;
  /**
   * Time until serving was whole again after the fault (ms): 0 when no request failed after it;
   * null when not applicable or it never recovered.
   */
  recovery_ms: number | null;
  /** Anything else worth reporting (migrations, redeliveries, exit code, drain time...). */
  notes: string;
}

/** The environment variable naming the run's folder (set by the global setup). */
export const RUN_DIR_ENV = 'DYNAMO_FAULTS_RUN_DIR';
/** Where the last run's rows are written (gitignored). */
export const LAST_RUN_FILE = path.join(__dirname, '.last-run.json');

/** Records `row` for the run's table (no-op outside a run started by the global setup). */
export function recordRow(row: FaultRow): void {
  const dir = process.env[RUN_DIR_ENV];
  if (!dir) return;
  mkdirSync(dir, { recursive: true });
  const file = `${row.case.replace(/[^A-Za-z0-9]+/g, '-').replace(/^-|-$/g, '')}.json`;
  writeFileSync(path.join(dir, file), JSON.stringify({ ...row, recorded_at: new Date().toISOString() }));
}

/** Every row recorded in `dir`, in case-name order. */
export function readRows(dir: string): FaultRow[] {
  let files: string[] = [];
  try {
    files = readdirSync(dir).filter((f) => f.endsWith('.json'));
  } catch {
    return [];
  }
  return files
    .map((f) => JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as FaultRow)
    .sort((a, b) => a.case.localeCompare(b.case));
}

const COLUMNS: Array<{ title: string; get: (r: FaultRow) => string; left?: boolean }> = [
  { title: 'case', get: (r) => r.case, left: true },
  { title: 'result', get: (r) => (r.passed ? 'pass' : 'FAIL'), left: true },
  { title: 'sent', get: (r) => String(r.sent) },
  { title: 'ok', get: (r) => String(r.ok) },
  { title: 'lost', get: (r) => String(r.lost) },
  { title: '503', get: (r) => String(r.unavailable) },
  { title: 'corrupted', get: (r) => String(r.corrupted) },
  { title: 'duplicated', get: (r) => String(r.duplicated) },
  { title: 'recovery', get: (r) => (r.recovery_ms === null ? '-' : `${(r.recovery_ms / 1000).toFixed(2)} s`) },
  { title: 'notes', get: (r) => r.notes, left: true },
];

/**
 * The rows as a plain-text table (Markdown-compatible, so docs can paste it): one line per case
 * with requests sent, ok, lost, answered 503 before streaming, corrupted, duplicated, and the
 * time to recover.
 */
export function formatFaultTable(rows: readonly FaultRow[]): string {
  const cells = rows.map((r) => COLUMNS.map((c) => c.get(r)));
  const widths = COLUMNS.map((c, i) => Math.max(c.title.length, ...cells.map((row) => row[i]!.length)));
  const line = (vals: string[]): string =>
    `| ${vals.map((v, i) => (COLUMNS[i]!.left ? v.padEnd(widths[i]!) : v.padStart(widths[i]!))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (COLUMNS[i]!.left ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [line(COLUMNS.map((c) => c.title)), rule, ...cells.map(line)].join('\n');
}

/**
 * Runs the case's assertions and records its row either way (`passed` set from the outcome),
 * so the table shows the figures of failing cases too.
 */
export function settleCase(row: Omit<FaultRow, 'passed'>, assertions: () => void): void {
  let passed = false;
  try {
    assertions();
    passed = true;
  } finally {
    recordRow({ ...row, passed });
  }
}
