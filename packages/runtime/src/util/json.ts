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

/**
 * Parses JSON text read from an untrusted source (discovery, the wire) of at most `limit` UTF-8
 * bytes; returns the value or why it is not one, never throws.
 */
export function parseUntrustedJson(
  text: string,
  limit: number,
): { ok: true; value: unknown } | { ok: false; error: string } {
  // A UTF-16 unit is at least one UTF-8 byte: longer strings are too large without counting.
  if (text.length > limit || Buffer.byteLength(text) > limit) {
    return { ok: false, error: `value is larger than ${limit} bytes` };
  }
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch {
    return { ok: false, error: 'value is not JSON' };
  }
}

/** Throws PAYLOAD_TOO_LARGE when `encoded` is larger than `limit` bytes in UTF-8. */
export function checkPayloadSize(encoded: string, limit: number): void {
  // A UTF-16 unit is at most 3 UTF-8 bytes: most payloads need no exact count.
  if (encoded.length * 3 <= limit) return;
  const size = Buffer.byteLength(encoded, 'utf8');
  if (size > limit) throw new PayloadTooLargeError(size, limit);
}

/** Thrown inside {@link copyJson}'s fast path when a value needs `JSON.stringify`'s full rules. */
const NOT_PLAIN: unique symbol = Symbol('not plain JSON data');
/** Nesting beyond this goes through JSON (which also reports cycles). */
const MAX_FAST_DEPTH = 64;

/**
 * A deep copy of `value` exactly as `decodeJson(encodeJson(value))` would give, checked against
 * `limit` bytes of encoded size like {@link checkPayloadSize}, without building the JSON text for
 * the common case: plain objects and arrays of strings, finite numbers, booleans and null.
 * Anything else (class instances, `toJSON`, `undefined`, non-finite numbers, BigInt, deep or
 * cyclic nesting, or a value that might exceed `limit`) takes the JSON round trip, with its errors.
 *
 * The in-memory planes use it to keep the "payloads are copied" contract at a fraction of the
 * cost of serializing and parsing every request and item.
 */
export function copyJson(value: unknown, what: string, limit: number): unknown {
  bound = 0;
  let copy: unknown;
  let plain = true;
  try {
    copy = copyPlain(value, 0);
  } catch (e) {
    if (e !== NOT_PLAIN) throw e;
    plain = false;
  }
  if (plain && bound <= limit) return copy;
  const encoded = encodeJson(value, what);
  checkPayloadSize(encoded, limit);
  return decodeJson(encoded);
}

/** {@link copyPlain}'s running upper bound of the copied value's UTF-8 JSON size (it never reenters). */
let bound = 0;

/**
 * Copies plain JSON data, adding to {@link bound} an upper bound of its UTF-8 JSON size (a UTF-16
 * unit is at most 6 bytes escaped, a number at most 24 characters).
 */
function copyPlain(v: unknown, depth: number): unknown {
  switch (typeof v) {
    case 'string':
      bound += v.length * 6 + 2;
      return v;
    case 'number':
      if (!Number.isFinite(v)) throw NOT_PLAIN;
      bound += 24;
      return v === 0 ? 0 : v; // JSON has no -0
    case 'boolean':
      bound += 5;
      return v;
    case 'object': {
      if (v === null) {
        bound += 4;
        return null;
      }
      if (depth >= MAX_FAST_DEPTH) throw NOT_PLAIN;
      if (Array.isArray(v)) {
        if (Object.getPrototypeOf(v) !== Array.prototype) throw NOT_PLAIN;
        const n = v.length;
        const out = new Array<unknown>(n);
        bound += 2 + n;
        for (let i = 0; i < n; i++) {
          const x: unknown = v[i];
          // Numbers (token ids) are the bulk of the data: keep them off the generic path.
          if (typeof x === 'number' && Number.isFinite(x)) {
            bound += 24;
            out[i] = x === 0 ? 0 : x;
          } else {
            out[i] = copyPlain(x, depth + 1);
          }
        }
        return out;
      }
      const proto: unknown = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) throw NOT_PLAIN;
      const src = v as Record<string, unknown>;
      if (typeof src.toJSON === 'function') throw NOT_PLAIN;
      const out: Record<string, unknown> = {};
      bound += 2;
      // for-in with an own-key check visits what Object.keys lists, in its order, without
      // building the key array (one per copied object, several per request and hop).
      for (const k in src) {
        if (!Object.hasOwn(src, k)) continue;
        bound += 1;
        const x = src[k];
        if (x === undefined || typeof x === 'function' || typeof x === 'symbol') throw NOT_PLAIN;
        bound += k.length * 6 + 3;
        // `__proto__` as an own data key must stay a key, as JSON.parse makes it.
        if (k === '__proto__')
          Object.defineProperty(out, k, {
            value: copyPlain(x, depth + 1),
            enumerable: true,
            writable: true,
            configurable: true,
          });
        else out[k] = copyPlain(x, depth + 1);
      }
      return out;
    }
    default:
      throw NOT_PLAIN;
  }
}
