/**
 * Requests per minute per client (an API key's id, or an address when no keys are configured),
 * as a token bucket: `limit` tokens, refilled evenly over a minute, so a client may burst up to
 * its limit and then goes at its rate, rather than hitting a wall at every minute boundary.
 *
 * Answers carry the IETF RateLimit fields (draft-ietf-httpapi-ratelimit-headers):
 * `RateLimit-Policy: "minute";q=<limit>;w=60` and `RateLimit: "minute";r=<left>;t=<seconds>`,
 * where `t` is the time until the bucket is full again.
 */

const WINDOW_SECONDS = 60;
/** Past this many clients, buckets that have refilled completely (no state worth keeping) are dropped. */
const SWEEP_AT = 10_000;

type Bucket = { tokens: number; updatedAt: number; limit: number };

export type RateDecision = { allowed: boolean; headers: Record<string, string> };

/** The answer for a bucket of `limit` per minute left with `tokens` after a take that was `allowed` (or not). */
function decisionOf(limit: number, tokens: number, allowed: boolean): RateDecision {
  const msPerToken = (WINDOW_SECONDS * 1000) / limit;
  const headers: Record<string, string> = {
    'RateLimit-Policy': `"minute";q=${limit};w=${WINDOW_SECONDS}`,
    RateLimit: `"minute";r=${Math.floor(tokens)};t=${Math.ceil(((limit - tokens) * msPerToken) / 1000)}`,
  };
  if (!allowed) headers['Retry-After'] = String(Math.max(1, Math.ceil(((1 - tokens) * msPerToken) / 1000)));
  return { allowed, headers };
}

export function createRateLimiter(now: () => number = () => performance.now()) {
  const buckets = new Map<string, Bucket>();

  const refill = (bucket: Bucket, at: number) => {
    const perMs = bucket.limit / (WINDOW_SECONDS * 1000);
    bucket.tokens = Math.min(bucket.limit, bucket.tokens + (at - bucket.updatedAt) * perMs);
    bucket.updatedAt = at;
  };

  const sweep = (at: number) => {
    for (const [client, bucket] of buckets) {
      refill(bucket, at);
      if (bucket.tokens >= bucket.limit) buckets.delete(client);
    }
  };

  return {
    /** Takes one token from `client`'s bucket of `limit` per minute. */
    take(client: string, limit: number): RateDecision {
      const at = now();
      let bucket = buckets.get(client);
      if (!bucket || bucket.limit !== limit) {
        if (buckets.size >= SWEEP_AT) sweep(at);
        bucket = { tokens: limit, updatedAt: at, limit };
        buckets.set(client, bucket);
      } else {
        refill(bucket, at);
      }
      const allowed = bucket.tokens >= 1;
      if (allowed) bucket.tokens -= 1;
      return decisionOf(limit, bucket.tokens, allowed);
    },
    /** Seconds until `client` has a token again (0 when it has one now), without taking one. */
    wait(client: string, limit: number): number {
      const bucket = buckets.get(client);
      if (!bucket || bucket.limit !== limit) return 0;
      refill(bucket, now());
      if (bucket.tokens >= 1) return 0;
      return Math.max(1, Math.ceil(((1 - bucket.tokens) * WINDOW_SECONDS) / limit));
    },
    get clients() {
      return buckets.size;
    },
  };
}

export type RateLimiter = ReturnType<typeof createRateLimiter>;

/**
 * The same token bucket kept in Redis (MINATO_REDIS_URL), so that several Minato replicas behind a
 * balancer enforce one limit per key: one Lua script reads, refills and takes atomically, on
 * Redis's own clock. Bun's built-in Redis client: no dependency. When Redis cannot be reached,
 * limits fall back to this process's own buckets (fail open: a Redis outage must not take the GPU
 * box down with it), said once in the log when it happens and once when Redis is back.
 */
const TAKE = `
local limit = tonumber(ARGV[1])
local window = ${WINDOW_SECONDS * 1000}
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local data = redis.call('HMGET', KEYS[1], 'tokens', 'at', 'limit')
local tokens = tonumber(data[1])
local at = tonumber(data[2])
if tokens == nil or tonumber(data[3]) ~= limit then tokens = limit; at = now end
tokens = math.min(limit, tokens + (now - at) * limit / window)
local allowed = 0
if tokens >= 1 then tokens = tokens - 1; allowed = 1 end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now), 'limit', tostring(limit))
redis.call('PEXPIRE', KEYS[1], window * 2)
return {allowed, tostring(tokens)}
`;

export type SharedRateLimiter = {
  take(client: string, limit: number): RateDecision | Promise<RateDecision>;
  close(): void;
};

/** After a Redis command fails or times out, how long limits stay in this process before Redis is tried again. */
const RETRY_REDIS_MS = 1000;

/**
 * Every command has a deadline (MINATO_REDIS_TIMEOUT_MS, tens of milliseconds): a Redis that stops
 * answering (paused, a full network queue) must not stall requests. Past it, or on any error, the
 * request is counted in this process (fail open), and for the next second no request waits on
 * Redis at all; then one request tries it again. Said once in the log when Redis goes, once when
 * it is back. The URL is checked at start (a PING), so that a wrong one is told at once.
 */
export function createRedisRateLimiter(
  url: string,
  log: (level: 'warn' | 'info', msg: string) => void,
  { timeoutMs = 50 }: { timeoutMs?: number } = {},
): SharedRateLimiter {
  const local = createRateLimiter();
  const redis = new Bun.RedisClient(url, { autoReconnect: true, enableOfflineQueue: false, connectionTimeout: 1000 });
  let down = false;
  /** While Redis is thought down: when to try it again. */
  let retryAt = 0;
  let trying = false;
  const fallBack = (why: string) => {
    retryAt = performance.now() + RETRY_REDIS_MS;
    if (!down) {
      down = true;
      log('warn', `Redis at MINATO_REDIS_URL is unavailable (${why}); rate limits are counted per process until it is back.`);
    }
  };
  /** A command with its deadline: rejects after `ms` whatever Redis does. */
  const withDeadline = <T>(command: Promise<T>, ms: number): Promise<T> => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms (MINATO_REDIS_TIMEOUT_MS)`)), ms);
    });
    command.catch(() => {}); // settled later, or never: nobody waits on it past the deadline
    return Promise.race([command, deadline]).finally(() => clearTimeout(timer));
  };
  // At start: connect and PING within a second, so that a wrong URL or a Redis that is not there
  // is said now, not at the first request.
  let connecting: Promise<void> | undefined = withDeadline(
    redis.connect().then(() => redis.send('PING', [])),
    1000,
  ).then(
    () => log('info', 'Redis at MINATO_REDIS_URL answers; rate limits are shared.'),
    (error) => fallBack((error as Error)?.message ?? String(error)),
  );
  return {
    take(client, limit) {
      // Thought down: counted here without waiting, but for one request a second that tries Redis.
      if (down && (performance.now() < retryAt || trying)) return local.take(client, limit);
      return shared(client, limit);
    },
    close: () => redis.close(),
  };

  async function shared(client: string, limit: number): Promise<RateDecision> {
    if (connecting) {
      // The first requests wait for the start-up check, but no longer than a command would.
      const settled = await Promise.race([connecting.then(() => true), Bun.sleep(timeoutMs).then(() => false)]);
      if (!settled || down) return local.take(client, limit);
      connecting = undefined;
    }
    trying = down;
    try {
      const [allowed, tokens] = (await withDeadline(
        redis.send('EVAL', [TAKE, '1', `minato:rate:${client}`, String(limit)]),
        timeoutMs,
      )) as [number, string];
      if (down) {
        down = false;
        log('info', 'Redis at MINATO_REDIS_URL is back; rate limits are shared again.');
      }
      return decisionOf(limit, Number(tokens), allowed === 1);
    } catch (error) {
      fallBack((error as Error)?.message ?? String(error));
      return local.take(client, limit);
    } finally {
      trying = false;
    }
  }
}
