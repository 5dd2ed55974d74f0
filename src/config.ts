import { z } from 'zod';
import { type ApiKey, parseKeys } from './security/api-keys';
import { isAddressOrCidr } from './security/client-address';

const list = (value: string) =>
  value
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');

/**
 * Turns the forms Ollama's own CLI accepts for OLLAMA_HOST (`host`, `host:port`, `:port`,
 * `http://host`, `https://host:port/prefix`) into a base URL without a trailing slash.
 * As in Ollama's envconfig.Host, a missing scheme means http on port 11434, while an explicit
 * scheme without a port means that scheme's own port (80 or 443).
 */
export function normalizeOllamaHost(raw: string): string {
  let value = raw.trim();
  if (value === '') throw new Error('is empty');
  let scheme = 'http';
  const schemeMatch = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\//.exec(value);
  if (schemeMatch) {
    scheme = schemeMatch[1]!.toLowerCase();
    value = value.slice(schemeMatch[0].length);
    if (scheme !== 'http' && scheme !== 'https') throw new Error(`has scheme "${scheme}"; use http or https`);
  }
  const slash = value.indexOf('/');
  const authority = slash === -1 ? value : value.slice(0, slash);
  const pathPrefix = slash === -1 ? '' : value.slice(slash).replace(/\/+$/, '');
  let host = authority;
  let port = '';
  const bracketed = /^\[([^\]]+)\](?::(\d*))?$/.exec(authority);
  if (bracketed) {
    host = `[${bracketed[1]}]`;
    port = bracketed[2] ?? '';
  } else {
    const colon = authority.lastIndexOf(':');
    if (colon !== -1) {
      host = authority.slice(0, colon);
      port = authority.slice(colon + 1);
    }
  }
  if (host === '') host = '127.0.0.1';
  if (host === '0.0.0.0') host = '127.0.0.1'; // a bind-all address is not something to connect to
  // Ollama's envconfig.Host: no scheme → 11434; an explicit http:// → 80, https:// → 443.
  if (port === '') port = !schemeMatch ? '11434' : scheme === 'https' ? '443' : '80';
  if (!/^\d+$/.test(port) || Number(port) < 1 || Number(port) > 65535) throw new Error(`has an invalid port "${port}"`);
  // A copy-pasted endpoint (`…:11434/api`, `…/v1`): Minato adds Ollama's paths itself.
  if (/\/(api|v1)(\/.*)?$/i.test(pathPrefix)) {
    throw new Error(
      `ends in ${pathPrefix}: give Ollama's address without it (${scheme}://${host}:${port}${pathPrefix.replace(/\/(api|v1)(\/.*)?$/i, '')}); Minato adds /api/… itself`,
    );
  }
  const url = `${scheme}://${host}:${port}${pathPrefix}`;
  try {
    new URL(url);
  } catch {
    throw new Error(`"${raw}" is not a host Ollama could listen on`);
  }
  return url;
}

/**
 * A number from the environment, with one message that says what is expected (zod's own would be
 * "expected number, received NaN" for `PORT=abc` or `MINATO_FIRST_BYTE_TIMEOUT=5m`).
 */
const number = (expected: string, { int = false, min = Number.NEGATIVE_INFINITY, max = Number.POSITIVE_INFINITY, above = false } = {}) =>
  z.string().transform((text, ctx) => {
    const value = Number(text.trim());
    const ok =
      text.trim() !== '' &&
      Number.isFinite(value) &&
      (!int || Number.isInteger(value)) &&
      (above ? value > min : value >= min) &&
      value <= max;
    if (!ok) {
      ctx.addIssue({ code: 'custom', message: `must be ${expected}` });
      return z.NEVER;
    }
    return value;
  });
const wholeNumber = (expected: string, min: number, max = Number.POSITIVE_INFINITY) =>
  number(`a whole number ${expected}`, { int: true, min, max });

/** Seconds, above 0 and at most a day: units are not accepted, and the message says so. */
const seconds = (fallback: number) =>
  number('a number of seconds above 0, at most 86400 (e.g. 300 — not 5m)', { min: 0, above: true, max: 24 * 3600 }).default(fallback);
const bytes = (fallback: number) => wholeNumber('of bytes above 0 (e.g. 65536 — not 64KB)', 1).default(fallback);

const flag = (fallback: 'true' | 'false') =>
  z
    .enum(['true', 'false', '1', '0'], { message: 'must be true, false, 1 or 0' })
    .default(fallback)
    .transform((value) => value === 'true' || value === '1');

/** What is served without a key unless MINATO_PUBLIC_PATHS says otherwise. */
export const DEFAULT_PUBLIC_PATHS = ['/health', '/ready', '/docs', '/openapi.json'];
/** What MINATO_PUBLIC_PATHS may list: never a route that reaches the GPU or installs models. */
export const PUBLIC_PATH_CHOICES = [...DEFAULT_PUBLIC_PATHS, '/metrics'];

const EnvSchema = z.object({
  OLLAMA_HOST: z
    .string()
    .default('http://127.0.0.1:11434')
    .transform((value, ctx) => {
      try {
        return normalizeOllamaHost(value);
      } catch (error) {
        ctx.addIssue({ code: 'custom', message: (error as Error).message });
        return z.NEVER;
      }
    }),
  /** Several Ollama instances (one per GPU or box), comma-separated; replaces OLLAMA_HOST when set. */
  OLLAMA_HOSTS: z
    .string()
    .optional()
    .transform((value, ctx) => {
      if (value === undefined) return undefined;
      const hosts: string[] = [];
      for (const item of list(value)) {
        try {
          hosts.push(normalizeOllamaHost(item));
        } catch (error) {
          ctx.addIssue({ code: 'custom', message: `"${item}" ${(error as Error).message}` });
          return z.NEVER;
        }
      }
      if (hosts.length === 0) {
        ctx.addIssue({ code: 'custom', message: 'lists no address; give one or more, comma-separated, or unset it' });
        return z.NEVER;
      }
      if (new Set(hosts).size !== hosts.length) {
        ctx.addIssue({ code: 'custom', message: 'lists the same instance twice' });
        return z.NEVER;
      }
      return hosts;
    }),
  /** How often each instance's installed and loaded models and health are refreshed, with several instances. */
  MINATO_FLEET_REFRESH: number('a number of seconds from 0.1 to 3600 (e.g. 5)', { min: 0.1, max: 3600 }).default(5),
  PORT: wholeNumber('from 0 to 65535 (0 picks a free port)', 0, 65535).default(8000),
  HOST: z.string().min(1).default('127.0.0.1'),
  /** Time allowed until Ollama sends its first byte: a cold model load sends nothing (Ollama's own OLLAMA_LOAD_TIMEOUT is 5 min). */
  MINATO_FIRST_BYTE_TIMEOUT: seconds(300),
  /** Longest silence allowed between two lines of a running stream. */
  MINATO_STREAM_IDLE_TIMEOUT: seconds(120),
  /** Longest silence between pull progress lines: Ollama is silent while it verifies a large model's digest. */
  MINATO_PULL_IDLE_TIMEOUT: seconds(900),
  /** Time allowed for quick metadata calls (`/api/show`, `/api/tags`, `/api/version`). */
  MINATO_METADATA_TIMEOUT: seconds(10),
  /** How long a model's `/api/show` capabilities are cached. */
  MINATO_CAPABILITIES_TTL: number('a number of seconds from 0 to 86400 (0 turns the cache off)', { min: 0, max: 24 * 3600 }).default(60),
  MINATO_MAX_IMAGE_BYTES: bytes(20 * 1024 * 1024),
  MINATO_MAX_IMAGES: wholeNumber('from 1 to 100', 1, 100).default(8),
  /** Serve Prometheus metrics at /metrics. */
  MINATO_METRICS: flag('true'),
  /** Removed: a scrape key is now an entry of MINATO_API_KEYS with the `metrics` scope. */
  MINATO_METRICS_KEY: z
    .string()
    .refine(() => false, 'was replaced: list the key in MINATO_API_KEYS as "<key> metrics" (a key that may only read /metrics)')
    .optional(),
  /** API keys, comma-separated: `<key or sha256:hex> [scopes…] [id=<name>] [rpm=<n>]`. */
  MINATO_API_KEYS: z.string().optional(),
  /** A file of API keys, one entry per line (same syntax), `#` comments allowed. */
  MINATO_API_KEYS_FILE: z.string().optional(),
  /** Start on a non-loopback address without any API key (everyone on the network may use the GPU). */
  MINATO_ALLOW_UNAUTHENTICATED: flag('false'),
  /** Paths served without a key; `none` for none. */
  MINATO_PUBLIC_PATHS: z.string().default(DEFAULT_PUBLIC_PATHS.join(',')),
  /** Browser origins allowed to call the API (CORS), comma-separated; `*` for any. */
  CORS_ORIGINS: z.string().optional(),
  /** Without API keys: host names (besides loopback ones and the bind address) requests may be addressed to; `*` for any. */
  MINATO_ALLOWED_HOSTS: z.string().optional(),
  /** Redis shared by several replicas for per-key rate limits (`redis://host:6379`); unset: per process. */
  MINATO_REDIS_URL: z
    .string()
    .refine((url) => {
      try {
        return /^(redis|rediss|redis\+tls|redis\+unix|redis\+tls\+unix):$/.test(new URL(url).protocol);
      } catch {
        return false;
      }
    }, 'must be a Redis URL: redis://host:6379, rediss://host:6380 (TLS) or redis+unix:///path/to/redis.sock')
    .optional(),
  /** Longest wait for one Redis command (milliseconds) before the rate limit falls back to this process. */
  MINATO_REDIS_TIMEOUT_MS: wholeNumber('of milliseconds from 1 to 10000 (e.g. 50)', 1, 10_000).default(50),
  /** Balancers whose X-Forwarded-For is believed (addresses or CIDRs, comma-separated). */
  MINATO_TRUSTED_PROXIES: z.string().optional(),
  /** Requests per minute per key (or per client address when no keys are configured); 0 turns it off. */
  MINATO_RATE_LIMIT: wholeNumber('of requests per minute, 0 or more (0 turns it off)', 0).default(600),
  /** Generations running at once, per model and in all. */
  MINATO_MAX_CONCURRENT_PER_MODEL: wholeNumber('of generations, 1 or more', 1).default(4),
  MINATO_MAX_CONCURRENT: wholeNumber('of generations, 1 or more', 1).default(16),
  /** Generations one key (or, without keys, one client address) may run at once; default half of MINATO_MAX_CONCURRENT. */
  MINATO_MAX_CONCURRENT_PER_KEY: wholeNumber('of generations, 1 or more', 1).optional(),
  /** Generations waiting for a slot, per model and in all; beyond that, 503. */
  MINATO_MAX_QUEUE_PER_MODEL: wholeNumber('of waiting requests, 0 or more', 0).default(32),
  MINATO_MAX_QUEUE: wholeNumber('of waiting requests, 0 or more', 0).default(128),
  /** Longest wait for a slot before a 503. */
  MINATO_QUEUE_TIMEOUT: seconds(60),
  /** Longest time a client may take to send a request body (any route that takes one). */
  MINATO_BODY_TIMEOUT: seconds(60),
  /** Longest time a streaming client may leave the answer unread before it is cut off. */
  MINATO_CLIENT_STALL_TIMEOUT: seconds(60),
  /** Size limits: the URL (prompts travel in the query string), all header lines, bodies of routes that take no images. */
  MINATO_MAX_URL_BYTES: bytes(64 * 1024),
  MINATO_MAX_HEADER_BYTES: bytes(16 * 1024),
  MINATO_MAX_BODY_BYTES: bytes(64 * 1024),
  /** Model blobs uploaded through POST /api/blobs (streamed through, never held). */
  MINATO_MAX_BLOB_BYTES: bytes(64 * 1024 ** 3),
  /** Chat bodies: a conversation with its images, parsed whole. */
  MINATO_MAX_CHAT_BODY_BYTES: bytes(32 * 1024 * 1024),
  /**
   * What the bodies of requests in flight may hold in all (bytes). A body counts from its first
   * byte read until its request has its answer; parsed chat bodies count four times their size.
   */
  MINATO_BODY_BUDGET: bytes(256 * 1024 * 1024),
  /** On SIGTERM/SIGINT: how long in-flight requests and streams may take to finish. */
  MINATO_SHUTDOWN_GRACE: number('a number of seconds from 0 to 3600 (e.g. 30 — not 30s)', { min: 0, max: 3600 }).default(30),
  /** One JSON line per request on stdout. */
  MINATO_LOG_REQUESTS: flag('true'),
});

/** A time limit and the setting it comes from, so that an error can name what to raise. */
export type Deadline = { readonly ms: number; readonly setting: string };

const deadline = (ms: number, setting: string): Deadline => ({ ms, setting });

export type Config = {
  /** The first (or only) Ollama instance. */
  ollamaHost: string;
  /** Every Ollama instance Minato routes to (OLLAMA_HOSTS; else just OLLAMA_HOST). */
  ollamaHosts: string[];
  /** Where `ollamaHosts` came from, said at start: OLLAMA_HOSTS replaces OLLAMA_HOST when both are set. */
  ollamaHostsFrom: { variable: 'OLLAMA_HOSTS' | 'OLLAMA_HOST'; ignoredOllamaHost: boolean };
  /** Background refresh of each instance's models and health (several instances only). */
  fleetRefreshMs: number;
  port: number;
  host: string;
  firstByte: Deadline;
  streamIdle: Deadline;
  pullIdle: Deadline;
  metadata: Deadline;
  capabilitiesTtlMs: number;
  maxImageBytes: number;
  maxImages: number;
  metrics: boolean;
  apiKeys: ApiKey[];
  allowUnauthenticated: boolean;
  publicPaths: string[];
  corsOrigins: string[];
  /** Host names accepted without keys besides loopback ones (the bind address included); `*` for any. */
  allowedHosts: string[];
  rateLimitPerMinute: number;
  redisUrl?: string;
  redisCommand: Deadline;
  /** Peers whose X-Forwarded-For names the client (addresses and CIDRs). */
  trustedProxies: string[];
  maxConcurrentPerModel: number;
  maxConcurrent: number;
  maxConcurrentPerKey: number;
  maxQueuePerModel: number;
  maxQueue: number;
  queueWait: Deadline;
  bodyUpload: Deadline;
  clientStall: Deadline;
  maxUrlBytes: number;
  maxHeaderBytes: number;
  maxBodyBytes: number;
  maxChatBodyBytes: number;
  maxBlobBytes: number;
  bodyBudgetBytes: number;
  shutdownGrace: Deadline;
  logRequests: boolean;
};

/** 127.0.0.0/8, ::1 and localhost: addresses only this machine can reach. */
export const isLoopback = (host: string) =>
  /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host) || ['::1', '[::1]', 'localhost'].includes(host.toLowerCase());

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join('\n'));
  }
}

/** Parses the environment (Bun has already merged `.env` into it). Empty strings count as unset. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const present = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value !== ''));
  const result = EnvSchema.safeParse(present);
  if (!result.success) {
    throw new ConfigError(
      result.error.issues.map((issue) => {
        const name = issue.path.join('.');
        return `${name}=${JSON.stringify(env[name] ?? '')}: ${issue.message}`;
      }),
    );
  }
  const e = result.data;
  const problems: string[] = [];
  let apiKeys: ApiKey[] = [];
  try {
    let file: { path: string; text: string } | undefined;
    if (e.MINATO_API_KEYS_FILE) {
      try {
        // node:fs only when there is a key file to read: it adds ≈ 4 MB to an idle Minato.
        const { readFileSync } = require('node:fs') as typeof import('node:fs');
        file = { path: e.MINATO_API_KEYS_FILE, text: readFileSync(e.MINATO_API_KEYS_FILE, 'utf8') };
      } catch (error) {
        throw new Error(`MINATO_API_KEYS_FILE: cannot read ${e.MINATO_API_KEYS_FILE} (${(error as NodeJS.ErrnoException).code ?? error})`);
      }
    }
    apiKeys = parseKeys(e.MINATO_API_KEYS, file);
  } catch (error) {
    problems.push(...(error as Error).message.split('\n'));
  }
  const publicPaths = e.MINATO_PUBLIC_PATHS.trim() === 'none' ? [] : list(e.MINATO_PUBLIC_PATHS);
  for (const path of publicPaths) {
    if (!PUBLIC_PATH_CHOICES.includes(path)) {
      problems.push(`MINATO_PUBLIC_PATHS: "${path}" cannot be public; choose from ${PUBLIC_PATH_CHOICES.join(', ')}, or none`);
    }
  }
  const corsOrigins = list(e.CORS_ORIGINS ?? '');
  for (const origin of corsOrigins) {
    if (origin !== '*' && !/^https?:\/\/[^/\s]+$/.test(origin)) {
      problems.push(`CORS_ORIGINS: "${origin}" is not an origin (scheme://host[:port], no path), nor *`);
    }
  }
  const allowedHosts = list(e.MINATO_ALLOWED_HOSTS ?? '').map((host) => host.toLowerCase());
  for (const host of allowedHosts) {
    if (host !== '*' && !/^(?:[a-z0-9_.-]+|\[[0-9a-f:.]+\])$/.test(host)) {
      problems.push(`MINATO_ALLOWED_HOSTS: "${host}" is not a host name (no scheme, port or path), nor *`);
    }
  }
  const trustedProxies = list(e.MINATO_TRUSTED_PROXIES ?? '');
  for (const proxy of trustedProxies) {
    if (!isAddressOrCidr(proxy))
      problems.push(`MINATO_TRUSTED_PROXIES: "${proxy}" is not an IP address or CIDR (e.g. 127.0.0.1, 10.0.0.0/8, ::1)`);
  }
  // The bind address is a name clients use; a bind-all address is not.
  if (!['0.0.0.0', '::', '[::]'].includes(e.HOST)) allowedHosts.push(e.HOST.toLowerCase());
  if (apiKeys.length === 0 && !isLoopback(e.HOST) && !e.MINATO_ALLOW_UNAUTHENTICATED) {
    problems.push(
      `HOST=${e.HOST}: refusing to listen beyond this machine without API keys, which would let anyone who can reach it run models on the GPU and install models. Set MINATO_API_KEYS (or MINATO_API_KEYS_FILE), or MINATO_ALLOW_UNAUTHENTICATED=true if a proxy in front already authenticates.`,
    );
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return {
    ollamaHost: e.OLLAMA_HOSTS?.[0] ?? e.OLLAMA_HOST,
    ollamaHosts: e.OLLAMA_HOSTS ?? [e.OLLAMA_HOST],
    ollamaHostsFrom: {
      variable: e.OLLAMA_HOSTS ? 'OLLAMA_HOSTS' : 'OLLAMA_HOST',
      ignoredOllamaHost: e.OLLAMA_HOSTS !== undefined && present.OLLAMA_HOST !== undefined,
    },
    fleetRefreshMs: e.MINATO_FLEET_REFRESH * 1000,
    port: e.PORT,
    host: e.HOST,
    firstByte: deadline(e.MINATO_FIRST_BYTE_TIMEOUT * 1000, 'MINATO_FIRST_BYTE_TIMEOUT'),
    streamIdle: deadline(e.MINATO_STREAM_IDLE_TIMEOUT * 1000, 'MINATO_STREAM_IDLE_TIMEOUT'),
    pullIdle: deadline(e.MINATO_PULL_IDLE_TIMEOUT * 1000, 'MINATO_PULL_IDLE_TIMEOUT'),
    metadata: deadline(e.MINATO_METADATA_TIMEOUT * 1000, 'MINATO_METADATA_TIMEOUT'),
    capabilitiesTtlMs: e.MINATO_CAPABILITIES_TTL * 1000,
    maxImageBytes: e.MINATO_MAX_IMAGE_BYTES,
    maxImages: e.MINATO_MAX_IMAGES,
    metrics: e.MINATO_METRICS,
    apiKeys,
    allowUnauthenticated: e.MINATO_ALLOW_UNAUTHENTICATED,
    publicPaths,
    corsOrigins,
    allowedHosts,
    rateLimitPerMinute: e.MINATO_RATE_LIMIT,
    redisUrl: e.MINATO_REDIS_URL,
    redisCommand: deadline(e.MINATO_REDIS_TIMEOUT_MS, 'MINATO_REDIS_TIMEOUT_MS'),
    trustedProxies,
    maxConcurrentPerModel: e.MINATO_MAX_CONCURRENT_PER_MODEL,
    maxConcurrent: e.MINATO_MAX_CONCURRENT,
    // Half of all the slots (which are per instance): one key cannot take every GPU.
    maxConcurrentPerKey:
      e.MINATO_MAX_CONCURRENT_PER_KEY ?? Math.max(1, Math.ceil((e.MINATO_MAX_CONCURRENT * (e.OLLAMA_HOSTS?.length ?? 1)) / 2)),
    maxQueuePerModel: e.MINATO_MAX_QUEUE_PER_MODEL,
    maxQueue: e.MINATO_MAX_QUEUE,
    queueWait: deadline(e.MINATO_QUEUE_TIMEOUT * 1000, 'MINATO_QUEUE_TIMEOUT'),
    bodyUpload: deadline(e.MINATO_BODY_TIMEOUT * 1000, 'MINATO_BODY_TIMEOUT'),
    clientStall: deadline(e.MINATO_CLIENT_STALL_TIMEOUT * 1000, 'MINATO_CLIENT_STALL_TIMEOUT'),
    maxUrlBytes: e.MINATO_MAX_URL_BYTES,
    maxHeaderBytes: e.MINATO_MAX_HEADER_BYTES,
    maxBodyBytes: e.MINATO_MAX_BODY_BYTES,
    maxChatBodyBytes: e.MINATO_MAX_CHAT_BODY_BYTES,
    maxBlobBytes: e.MINATO_MAX_BLOB_BYTES,
    bodyBudgetBytes: e.MINATO_BODY_BUDGET,
    shutdownGrace: deadline(e.MINATO_SHUTDOWN_GRACE * 1000, 'MINATO_SHUTDOWN_GRACE'),
    logRequests: e.MINATO_LOG_REQUESTS,
  };
}
