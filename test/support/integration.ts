import { missingBinaries } from '@dynamo-ts/runtime/testing';

/**
 * `describe` for integration tests that need real server binaries. When one is missing, the
 * suite fails under CI=true (so CI can never pass by skipping) and is skipped locally with
 * the reason printed.
 */
export function describeWithBinaries(binaries: readonly string[], name: string, fn: () => void): void {
  const missing = missingBinaries(binaries);
  if (missing.length === 0) {
    describe(name, fn);
    return;
  }
  const reason = `${missing.join(', ')} not installed (Debian: apt-get install -y nats-server etcd-server)`;
  if (process.env.CI === 'true' || process.env.CI === '1') {
    describe(name, () => {
      it('has its server binaries', () => {
        throw new Error(`integration suite "${name}" cannot run: ${reason}`);
      });
    });
  } else {
    process.stderr.write(`skipping integration suite "${name}": ${reason}\n`);
    describe.skip(name, fn);
  }
}
