import { InvalidArgumentError, PayloadTooLargeError } from '../errors';

/**
 * Encodes a value as it would travel on the wire: JSON, with `undefined` sent as `null`.
 * Throws INVALID_ARGUMENT naming `what` when the value cannot be serialized (BigInt, cycles).
 */
export function encodeJson(value: unknown, what: string): string {
  let encoded: string | undefined;
  try {
    encoded = JSON.stringify(value);
  } catch (e) {
    throw new InvalidArgumentError(`${what} is not JSON-serializable: ${e instanceof Error ? e.message : String(e)}`, {
      cause: e,
    });
  }
  return encoded ?? 'null';
}

/** Decodes a value encoded by {@link encodeJson} (a fresh copy on every call). */
export function decodeJson(encoded: string): unknown {
  return JSON.parse(encoded) as unknown;
}

/** Throws PAYLOAD_TOO_LARGE when `encoded` is larger than `limit` bytes in UTF-8. */
export function checkPayloadSize(encoded: string, limit: number): void {
  // A UTF-16 unit is at most 3 UTF-8 bytes: most payloads need no exact count.
  if (encoded.length * 3 <= limit) return;
  const size = Buffer.byteLength(encoded, 'utf8');
  if (size > limit) throw new PayloadTooLargeError(size, limit);
}
