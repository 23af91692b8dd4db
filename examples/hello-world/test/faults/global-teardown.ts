import { rmSync, writeFileSync } from 'node:fs';
import { formatFaultTable, LAST_RUN_FILE, readRows, RUN_DIR_ENV } from './report';

/** Prints the run's table to stderr and writes it as JSON to `test/faults/.last-run.json`. */
export default function globalTeardown(): void {
  const dir = process.env[RUN_DIR_ENV];
  if (!dir) return;
  const rows = readRows(dir);
  rmSync(dir, { recursive: true, force: true });
  delete process.env[RUN_DIR_ENV];
  if (rows.length === 0) return;
  process.stderr.write(`\nfault-injection run (${rows.length} cases):\n${formatFaultTable(rows)}\n\n`);
  writeFileSync(LAST_RUN_FILE, `${JSON.stringify({ finished_at: new Date().toISOString(), cases: rows }, null, 2)}\n`);
}
