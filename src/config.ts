import { z } from 'zod';

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
  const url = `${scheme}://${host}:${port}${pathPrefix}`;
  try {
    new URL(url);
  } catch {
    throw new Error(`"${raw}" is not a host Ollama could listen on`);
  }
  return url;
}

const seconds = (fallback: number) =>
  z.coerce
    .number()
    .positive()
    .max(24 * 3600)
    .default(fallback);
const bytes = (fallback: number) => z.coerce.number().int().positive().default(fallback);

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
  PORT: z.coerce.number().int().min(0).max(65535).default(8000),
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
  MINATO_CAPABILITIES_TTL: z.coerce
    .number()
    .min(0)
    .max(24 * 3600)
    .default(60),
  MINATO_MAX_IMAGE_BYTES: bytes(20 * 1024 * 1024),
  MINATO_MAX_IMAGES: z.coerce.number().int().positive().max(100).default(8),
  /** Serve Prometheus metrics at /metrics. */
  MINATO_METRICS: z
    .enum(['true', 'false', '1', '0'], { message: 'must be true, false, 1 or 0' })
    .default('true')
    .transform((value) => value === 'true' || value === '1'),
  /** When set, /metrics wants `Authorization: Bearer <this key>`. */
  MINATO_METRICS_KEY: z.string().min(16, 'must be at least 16 characters').optional(),
});

export type Config = {
  ollamaHost: string;
  port: number;
  host: string;
  firstByteTimeoutMs: number;
  streamIdleTimeoutMs: number;
  pullIdleTimeoutMs: number;
  metadataTimeoutMs: number;
  capabilitiesTtlMs: number;
  maxImageBytes: number;
  maxImages: number;
  metrics: boolean;
  metricsKey: string | undefined;
};

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
  return {
    ollamaHost: e.OLLAMA_HOST,
    port: e.PORT,
    host: e.HOST,
    firstByteTimeoutMs: e.MINATO_FIRST_BYTE_TIMEOUT * 1000,
    streamIdleTimeoutMs: e.MINATO_STREAM_IDLE_TIMEOUT * 1000,
    pullIdleTimeoutMs: e.MINATO_PULL_IDLE_TIMEOUT * 1000,
    metadataTimeoutMs: e.MINATO_METADATA_TIMEOUT * 1000,
    capabilitiesTtlMs: e.MINATO_CAPABILITIES_TTL * 1000,
    maxImageBytes: e.MINATO_MAX_IMAGE_BYTES,
    maxImages: e.MINATO_MAX_IMAGES,
    metrics: e.MINATO_METRICS,
    metricsKey: e.MINATO_METRICS_KEY,
  };
}
