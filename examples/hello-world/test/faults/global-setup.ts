import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RUN_DIR_ENV } from './report';

/** Gives the run a fresh folder for its rows (test workers inherit the environment). */
export default function globalSetup(): void {
  process.env[RUN_DIR_ENV] = mkdtempSync(path.join(os.tmpdir(), 'dynamo-faults-run-'));
}
