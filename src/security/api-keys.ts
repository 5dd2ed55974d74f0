import { ApiError } from '../http/errors';

/**
 * API keys and what each may do. A key is kept only as its SHA-256 digest: in the environment or
 * the key file it may be written in clear or as `sha256:<hex>`, so that the file need not hold
 * secrets. A request's key is hashed and compared with every configured digest in constant time.
 */

/** `generate`: answers and model lists; `metrics`: /metrics; `admin`: everything, including installs. */
export const SCOPES = ['generate', 'metrics', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

export type ApiKey = {
  /** Safe to log: the name given with `id=`, or `key-` and the first 8 hex digits of the digest. */
  id: string;
  scopes: ReadonlySet<Scope>;
  /** Requests per minute for this key, overriding MINATO_RATE_LIMIT. */
  rpm?: number;
  digest: Buffer;
};

export const MIN_KEY_LENGTH = 16;

/** SHA-256 of a key. Bun's one-shot hasher: a fifth of node:crypto's createHash time on every request. */
export const sha256 = (value: string): Buffer => {
  const digest = Bun.SHA256.hash(value) as Uint8Array;
  return Buffer.from(digest.buffer, digest.byteOffset, digest.byteLength);
};

/**
 * One entry: `<key> [scope…] [id=<name>] [rpm=<n>]`, separated by spaces. Without a scope a key
 * may `generate`. Throws with a message that never repeats the key itself.
 */
export function parseKeyEntry(entry: string, where: string): ApiKey {
  const [secret = '', ...words] = entry.trim().split(/\s+/);
  let digest: Buffer;
  const hashed = /^sha256:(.*)$/i.exec(secret);
  if (hashed) {
    if (!/^[0-9a-f]{64}$/i.test(hashed[1]!)) throw new Error(`${where}: "sha256:" must be followed by 64 hex digits`);
    digest = Buffer.from(hashed[1]!, 'hex');
  } else {
    if (secret.length < MIN_KEY_LENGTH) {
      throw new Error(`${where}: a key must have at least ${MIN_KEY_LENGTH} characters (e.g. \`openssl rand -hex 24\`)`);
    }
    if (!/^[\x21-\x7e]+$/.test(secret)) throw new Error(`${where}: a key may hold only printable ASCII without spaces`);
    digest = sha256(secret);
  }
  const scopes = new Set<Scope>();
  let id: string | undefined;
  let rpm: number | undefined;
  for (const word of words) {
    if ((SCOPES as readonly string[]).includes(word)) scopes.add(word as Scope);
    else if (word.startsWith('id=') && /^id=[\w.@-]{1,64}$/.test(word)) id = word.slice(3);
    else if (/^rpm=\d+$/.test(word)) rpm = Number(word.slice(4));
    else throw new Error(`${where}: "${word}" is not a scope (${SCOPES.join(', ')}), id=<name> or rpm=<n>`);
  }
  if (scopes.size === 0) scopes.add('generate');
  return { id: id ?? `key-${digest.toString('hex').slice(0, 8)}`, scopes, rpm, digest };
}

/** Entries from MINATO_API_KEYS (comma-separated) and a key file (one per line, `#` comments). */
export function parseKeys(list: string | undefined, file: { path: string; text: string } | undefined): ApiKey[] {
  const keys: ApiKey[] = [];
  const problems: string[] = [];
  const seen = new Map<string, string>();
  const add = (entry: string, where: string): void => {
    if (entry.trim() === '') return;
    try {
      const key = parseKeyEntry(entry, where);
      // One secret, one set of scopes: a second listing would silently be ignored.
      const first = seen.get(key.digest.toString('hex'));
      if (first !== undefined)
        throw new Error(`${where}: the same key is already listed (${first}); list each key once, with all its scopes`);
      seen.set(key.digest.toString('hex'), where);
      keys.push(key);
    } catch (error) {
      problems.push((error as Error).message);
    }
  };
  for (const [i, entry] of (list ?? '').split(',').entries()) add(entry, `MINATO_API_KEYS entry ${i + 1}`);
  for (const [i, line] of (file?.text.split(/\r?\n/) ?? []).entries()) add(line.replace(/(^|\s)#.*$/, ''), `${file?.path} line ${i + 1}`);
  const ids = new Map<string, number>();
  for (const key of keys) ids.set(key.id, (ids.get(key.id) ?? 0) + 1);
  for (const [id, count] of ids)
    if (count > 1) problems.push(`the key id "${id}" is used ${count} times; ids must tell keys apart in logs`);
  if (problems.length > 0) throw new Error(problems.join('\n'));
  return keys;
}

/**
 * The key a request presented, from `Authorization: Bearer` or `X-API-Key`. Two different keys
 * are refused (400) rather than one silently chosen: which one the caller meant is not Minato's guess.
 */
export function presentedKey(authorization: string | undefined, apiKeyHeader: string | undefined): string | undefined {
  const bearer = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization ?? '')?.[1];
  const header = apiKeyHeader === undefined || apiKeyHeader.trim() === '' ? undefined : apiKeyHeader.trim();
  if (bearer !== undefined && header !== undefined && bearer !== header) {
    throw new ApiError(
      400,
      'The request carries two different keys (Authorization: Bearer and X-API-Key); send one key, in either header.',
      'conflicting_keys',
    );
  }
  return header ?? bearer;
}

/**
 * The configured key matching `presented`, compared in constant time: every digest is compared,
 * with no early exit, and only digests are compared, so neither a key nor its length leaks.
 */
export function findKey(keys: readonly ApiKey[], presented: string): ApiKey | undefined {
  const digest = sha256(presented);
  let found: ApiKey | undefined;
  // Bun's own constant-time comparison on the global `crypto` (node:crypto adds ≈ 7 MB to an idle Minato).
  for (const key of keys) if (crypto.timingSafeEqual(digest, key.digest) && !found) found = key;
  return found;
}

export const allows = (key: ApiKey, scope: Scope) => key.scopes.has('admin') || key.scopes.has(scope);
