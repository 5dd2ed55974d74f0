import type { Context } from 'hono';
import { type Config, isLoopback } from '../config';
import type { AppEnv } from '../http/router';

/**
 * Who a request belongs to, in one place: its key (`key:<id>`); without keys, its client address
 * (`ip:<address>`, behind a trusted proxy the forwarded one) when Minato is exposed beyond
 * loopback; on loopback without keys nobody in particular (every client there is the same).
 * Rate limits and MINATO_MAX_CONCURRENT_PER_KEY count per owner.
 */
export function ownerOf(c: Context<AppEnv>, config: Config): string | undefined {
  const key = c.var.apiKey;
  if (key) return `key:${key.id}`;
  if (config.apiKeys.length > 0 || isLoopback(config.host)) return undefined;
  return `ip:${c.var.client()}`;
}
