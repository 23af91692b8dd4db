/** Shared by the security integration tests. */

/** The rejection of `p` (fails when it resolves). */
export async function rejectionOf(p: Promise<unknown>): Promise<Error & { code?: string; retryable?: boolean }> {
  try {
    await p;
  } catch (e) {
    return e as Error & { code?: string; retryable?: boolean };
  }
  throw new Error('expected a rejection');
}
