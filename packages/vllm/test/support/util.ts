import type { IngestLogger } from '../../src/ingest/ingest';

/** Polls `pred` until true (or fails after `ms`). */
export async function until(pred: () => boolean, ms = 8000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A logger that keeps its lines (tests assert on them). */
export function memoryLogger(): IngestLogger & {
  lines: { level: string; message: string; fields?: Record<string, unknown> }[];
} {
  const lines: { level: string; message: string; fields?: Record<string, unknown> }[] = [];
  const at = (level: string) => (message: string, fields?: Record<string, unknown>) =>
    lines.push({ level, message, fields });
  return { lines, error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug') };
}
