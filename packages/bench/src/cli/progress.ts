import cliProgress from 'cli-progress';

/** A progress bar on standard error (silent when it is not a terminal). */
export function progressBar(): { update(phase: string, done: number, total: number): void; stop(): void } {
  const bar = new cliProgress.SingleBar(
    { format: '{phase} [{bar}] {percentage}% {value}/{total}', stream: process.stderr, hideCursor: true },
    cliProgress.Presets.shades_classic,
  );
  let phase = '';
  return {
    update(p, done, total) {
      if (p !== phase) {
        if (phase) bar.stop();
        phase = p;
        bar.start(total, done, { phase: p.padEnd(9) });
      } else bar.update(done);
    },
    stop() {
      if (phase) bar.stop();
    },
  };
}
