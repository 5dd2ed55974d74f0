import type { RouteConfig } from '@hono/zod-openapi';
import type { Context, Next } from 'hono';
import { createMiddleware } from 'hono/factory';
import type { Config } from '../config';
import { allows, findKey, presentedKey, type Scope } from '../security/api-keys';
import { ApiError } from '../http/errors';
import { createRateLimiter, type RateLimiter, type SharedRateLimiter } from '../security/rate-limit';
import type { AppEnv } from '../http/router';
import { ownerOf } from '../security/owner';
import { factsOf } from '../http/route-facts';
import { jsonError as authErrorResponse } from '../openapi/schemas';

/** The two ways to send a key, as declared in the OpenAPI document (so /docs can send one). */
export const SECURITY_SCHEMES = {
  bearerAuth: { type: 'http', scheme: 'bearer', description: 'An API key from MINATO_API_KEYS: `Authorization: Bearer <key>`.' },
  apiKeyHeader: { type: 'apiKey', in: 'header', name: 'X-API-Key', description: 'The same key as `X-API-Key: <key>`.' },
} as const;

/** OpenAPI security requirement for a route needing `scope` (OpenAPI 3.1 lists roles for non-OAuth schemes). */
const requirement = (scope: Scope | undefined): Record<string, string[]>[] => {
  const roles: string[] = scope ? [scope] : [];
  return [{ bearerAuth: roles }, { apiKeyHeader: roles }];
};

/** Whether `path` (a request path) is served without a key: a listed path, and for `/docs` its assets and /redoc. */
export function isPublicPath(config: Config, path: string): boolean {
  for (const open of config.publicPaths) {
    if (path === open) return true;
    if (open === '/docs' && (path.startsWith('/docs/') || path === '/redoc')) return true;
  }
  return false;
}

/** Wrong keys one client address may send per minute (a burst of that many, then one every two seconds). */
export const AUTH_FAILURES_PER_MINUTE = 30;

const unauthorized = (detail: string, error?: string) =>
  new ApiError(401, detail, 'unauthorized', {
    'WWW-Authenticate': `Bearer realm="minato"${error ? `, error="${error}"` : ''}`,
  });

/**
 * Every request but those to public paths needs a configured key (a route added without a scope
 * is still behind a key: deny by default). Then the per-key rate limit. With no keys configured
 * nobody is asked for a key; on loopback nothing is limited either (every client there has the
 * same address, as the original service had no limit), while beyond loopback (allowed only with
 * MINATO_ALLOW_UNAUTHENTICATED) the rate limit counts per client address.
 */
export function authenticate(
  config: Config,
  limiter: Pick<RateLimiter, 'take'> | SharedRateLimiter,
  failures: RateLimiter = createRateLimiter(),
) {
  const keys = config.apiKeys;
  // Wrong keys are counted per client address; the lockout is asked about only while some address
  // has failures counted (a bucket refills within the minute after its last failure).
  let lastFailureAt = Number.NEGATIVE_INFINITY;
  // Synchronous unless a rate limit is to be taken (it may ask Redis): no async frame on every request.
  return createMiddleware<AppEnv>((c, next) => {
    if (isPublicPath(config, c.req.path)) {
      // A public path asks for no key, but a valid one still identifies the caller (for /ready's details).
      const presented = keys.length > 0 ? presentedKey(c.req.header('authorization'), c.req.header('x-api-key')) : undefined;
      const key = presented === undefined ? undefined : findKey(keys, presented);
      if (key) {
        c.set('apiKey', key);
        c.var.record.keyId = key.id;
      }
      return next();
    }
    let keyId: string | undefined;
    let limit = config.rateLimitPerMinute;
    if (keys.length > 0) {
      const presented = presentedKey(c.req.header('authorization'), c.req.header('x-api-key'));
      if (presented === undefined) {
        // A key sent as `Authorization: <key>` (no scheme) or with another scheme: say how it is sent.
        const authorization = c.req.header('authorization')?.trim();
        if (authorization) {
          const scheme = /^(\S+)\s+\S/.exec(authorization)?.[1];
          throw unauthorized(
            scheme === undefined
              ? 'The Authorization header has no scheme: send the key as Authorization: Bearer <key> (with the word Bearer), or as X-API-Key: <key>.'
              : `The Authorization header uses the "${scheme.slice(0, 20)}" scheme; Minato takes Authorization: Bearer <key>, or X-API-Key: <key>.`,
            'invalid_request',
          );
        }
        throw unauthorized('This route needs an API key: send Authorization: Bearer <key> or X-API-Key: <key>.');
      }
      const key = findKey(keys, presented);
      if (!key) {
        // Key guessing is slowed per client address: past AUTH_FAILURES_PER_MINUTE wrong keys, the
        // address gets 429 instead of 401 until Retry-After. A valid key is never refused for what
        // another client on the same address sent (behind a balancer, see MINATO_TRUSTED_PROXIES).
        const address = c.var.client();
        const recentFailures = performance.now() - lastFailureAt < 61_000;
        const wait = recentFailures ? failures.wait(`fail:${address}`, AUTH_FAILURES_PER_MINUTE) : 0;
        if (wait > 0) {
          throw new ApiError(
            429,
            `Too many requests with a wrong API key from this address (more than ${AUTH_FAILURES_PER_MINUTE} a minute). Retry after ${wait} s with a valid key.`,
            'too_many_auth_failures',
            { 'Retry-After': String(wait) },
          );
        }
        lastFailureAt = performance.now();
        failures.take(`fail:${address}`, AUTH_FAILURES_PER_MINUTE);
        throw unauthorized('The API key is not valid. Check it against MINATO_API_KEYS.', 'invalid_token');
      }
      c.set('apiKey', key);
      c.var.record.keyId = key.id;
      keyId = key.id;
      limit = key.rpm ?? limit;
    }
    // Counted per owner: the key, or without keys beyond loopback the client address.
    const owner = ownerOf(c, config);
    if (owner === undefined || limit === 0) return next();
    return limited(c, next, owner, limit, keyId);
  });

  async function limited(c: Context<AppEnv>, next: Next, client: string, limit: number, keyId: string | undefined) {
    const decision = await limiter.take(client, limit);
    if (!decision.allowed) {
      throw new ApiError(
        429,
        `Rate limit of ${limit} requests per minute reached${keyId ? ` for key ${keyId}` : ''}. Retry after ${decision.headers['Retry-After']} s.`,
        'rate_limited',
        decision.headers,
      );
    }
    await next();
    for (const [name, value] of Object.entries(decision.headers)) c.res.headers.set(name, value);
  }
}

const WHAT_SCOPES_ALLOW: Record<Scope, string> = {
  generate: 'generate answers and list models',
  metrics: 'read /metrics',
  admin: 'install models',
};

/** Refuses a key without `scope` (admin keys have every scope); nothing to check when no keys are configured. */
export const requireScope = (scope: Scope) =>
  createMiddleware<AppEnv>((c, next) => {
    const key = c.var.apiKey;
    if (key && !allows(key, scope)) {
      throw new ApiError(
        403,
        `The key ${key.id} may not ${WHAT_SCOPES_ALLOW[scope]}: that needs a key with the "${scope}" scope in MINATO_API_KEYS${scope === 'admin' ? '' : ' (admin keys have it too)'}.`,
        'forbidden',
      );
    }
    // A pull or an install may be silent for minutes: Bun's idle timer is off until it is answered.
    if (factsOf(c)?.longWait) c.var.holdConnection?.();
    return next();
  });

/**
 * A route behind a key with `scope`: the OpenAPI document declares the requirement and the
 * route enforces it, from this one declaration. A public path declares none (`security: []`).
 */
export function secured<R extends RouteConfig>(config: Config, route: R, scope: Scope) {
  if (isPublicRoute(config, route)) return { ...route, security: [] } as R;
  return {
    ...route,
    security: requirement(scope),
    middleware: [requireScope(scope), ...(route.middleware === undefined ? [] : [route.middleware].flat())],
    responses: {
      400: authErrorResponse(
        'A `Host` header that is not a host name, or two different keys in `Authorization` and `X-API-Key`.',
        'conflicting_keys',
        'The request carries two different keys (Authorization: Bearer and X-API-Key); send one key, in either header.',
      ),
      ...route.responses,
      401: authErrorResponse(
        'No API key, or not a valid one. Send `Authorization: Bearer <key>` or `X-API-Key: <key>`.',
        'unauthorized',
        'This route needs an API key: send Authorization: Bearer <key> or X-API-Key: <key>.',
      ),
      403: authErrorResponse(
        `The key lacks the "${scope}" scope; or, without keys configured, the request was addressed to a host name that is not this machine's or sent from another site's page.`,
        'forbidden',
        `The key alice may not ${WHAT_SCOPES_ALLOW[scope]}: that needs a key with the "${scope}" scope in MINATO_API_KEYS${scope === 'admin' ? '' : ' (admin keys have it too)'}.`,
      ),
      429: authErrorResponse(
        "The key's rate limit is reached, or too many wrong keys came from this address; retry after `Retry-After` seconds.",
        'rate_limited',
        'Rate limit of 600 requests per minute reached for key alice. Retry after 1 s.',
      ),
      414: authErrorResponse(
        'The URL is longer than MINATO_MAX_URL_BYTES.',
        'uri_too_long',
        'The URL is 70000 bytes long; the limit is 65536 (MINATO_MAX_URL_BYTES). Long prompts: shorten them, or raise the limit.',
      ),
      431: authErrorResponse(
        'The request headers are larger than MINATO_MAX_HEADER_BYTES.',
        'headers_too_large',
        'The request headers take 20000 bytes; the limit is 16384 (MINATO_MAX_HEADER_BYTES).',
      ),
    },
  } as R;
}

/** For routes every key may use (health and docs when they are not public). */
export function anyKey<R extends RouteConfig>(config: Config, route: R): R {
  return { ...route, security: isPublicRoute(config, route) ? [] : requirement(undefined) };
}

/** Whether a route's OpenAPI path template (`/stream/{model_name}`) is public. */
const isPublicRoute = (config: Config, route: RouteConfig) => isPublicPath(config, route.path.replace(/\{([^}]+)\}/g, ':$1'));
