/**
 * Keeping secrets out of log lines and error messages: URLs lose their `user:password@` part,
 * and any text can be scrubbed of the secret values a connection was given.
 */

/** A URL with its credentials taken out. */
export interface SplitUrl {
  /** The URL without `user:password@`. */
  url: string;
  /** Decoded user name, when the URL had one. */
  user?: string;
  /** Decoded password, when the URL had one. */
  password?: string;
}

const USERINFO = /^([a-z][a-z0-9+.-]*:\/\/)([^@/?#]*)@/i;

/**
 * Splits `scheme://user:password@host:port` into the URL without credentials and the decoded
 * user and password. URLs without credentials (or without a scheme) come back unchanged.
 */
export function splitUrlCredentials(url: string): SplitUrl {
  const m = USERINFO.exec(url);
  if (!m) return { url };
  const rest = url.slice(m[0].length);
  const info = m[2]!;
  const colon = info.indexOf(':');
  const decode = (s: string): string => {
    try {
      return decodeURIComponent(s);
    } catch {
      return s;
    }
  };
  const user = decode(colon < 0 ? info : info.slice(0, colon));
  const out: SplitUrl = { url: `${m[1]}${rest}` };
  if (user !== '') out.user = user;
  if (colon >= 0) out.password = decode(info.slice(colon + 1));
  return out;
}

/** The URL with any `user:password@` replaced by `***@` (for logs and messages). */
export function redactUrl(url: string): string {
  return url.replace(USERINFO, (_all, scheme: string) => `${scheme}***@`);
}

/**
 * Scrubs secret values (passwords, tokens, seeds) and URL credentials from `text`. Secrets
 * shorter than 4 characters are still replaced, so a short password cannot leak either.
 */
export function redactSecrets(text: string, secrets: readonly (string | undefined)[]): string {
  let out = text.replace(/([a-z][a-z0-9+.-]*:\/\/)[^@/\s?#]*@/gi, (_all, scheme: string) => `${scheme}***@`);
  const values = secrets.filter((s): s is string => typeof s === 'string' && s.length > 0);
  // Longest first, so a secret that contains another is replaced whole.
  values.sort((a, b) => b.length - a.length);
  for (const v of values) out = out.split(v).join('***');
  return out;
}
