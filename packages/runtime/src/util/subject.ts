import { InvalidArgumentError } from '../errors';

/**
 * Checks a dot-separated subject and returns its tokens. Tokens are non-empty and free of
 * whitespace. With `wildcards`, a token may be `*` (exactly one token) and the last token may
 * be `>` (one or more tokens), as in NATS; without, neither is allowed.
 */
export function parseSubject(subject: string, wildcards: boolean): string[] {
  if (typeof subject !== 'string' || subject.length === 0) {
    throw new InvalidArgumentError(`subject ${JSON.stringify(subject)} must be a non-empty string`);
  }
  const tokens = subject.split('.');
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t.length === 0 || /\s/.test(t)) {
      throw new InvalidArgumentError(`subject ${JSON.stringify(subject)} has an empty or blank token`);
    }
    if (t === '*' || t === '>') {
      if (!wildcards) throw new InvalidArgumentError(`subject ${JSON.stringify(subject)} must not contain wildcards`);
      if (t === '>' && i !== tokens.length - 1) {
        throw new InvalidArgumentError(`subject ${JSON.stringify(subject)}: '>' must be the last token`);
      }
    }
  }
  return tokens;
}

/** True when the subject has a `*` or `>` token. */
export function hasWildcard(tokens: readonly string[]): boolean {
  return tokens.some((t) => t === '*' || t === '>');
}

/** True when the subject `tokens` match the `pattern` tokens (NATS rules: `*` one token, `>` one or more). */
export function subjectMatches(pattern: readonly string[], tokens: readonly string[]): boolean {
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i]!;
    if (p === '>') return tokens.length > i;
    if (i >= tokens.length) return false;
    if (p !== '*' && p !== tokens[i]) return false;
  }
  return pattern.length === tokens.length;
}

/** Subjects already found valid by {@link checkSubject} (a hot path checks the same few again and again). */
const validSubjects = new Set<string>();
const MAX_REMEMBERED = 4096;

/**
 * {@link parseSubject} without wildcards, for hot paths (every publish, every request): a
 * subject found valid once is not split and scanned again.
 */
export function checkSubject(subject: string): void {
  if (validSubjects.has(subject)) return;
  parseSubject(subject, false);
  if (validSubjects.size >= MAX_REMEMBERED) validSubjects.clear();
  validSubjects.add(subject);
}
