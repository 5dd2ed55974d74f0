import { cors } from 'hono/cors';

/**
 * CORS for the origins in CORS_ORIGINS (`*` for any). Preflights are answered before
 * authentication (a browser sends them without the key); the headers a browser client needs to
 * read — the request id, rate-limit and queue fields — are exposed, streams included. No
 * credentials mode: keys travel in headers, never cookies.
 */
export function corsFor(origins: string[]) {
  const any = origins.includes('*');
  const allowed = new Set(origins);
  return cors({
    origin: (origin) => (any ? '*' : allowed.has(origin) ? origin : null),
    allowMethods: ['GET', 'POST', 'OPTIONS'],
    // The openai SDK sends its X-Stainless-* headers from browsers too.
    allowHeaders: [
      'Authorization',
      'X-API-Key',
      'Content-Type',
      'Accept',
      'Last-Event-ID',
      'X-Request-Id',
      ...['Arch', 'Lang', 'OS', 'Package-Version', 'Retry-Count', 'Runtime', 'Runtime-Version', 'Timeout', 'Helper-Method'].map(
        (name) => `X-Stainless-${name}`,
      ),
    ],
    exposeHeaders: [
      'X-Request-Id',
      'Retry-After',
      'RateLimit',
      'RateLimit-Policy',
      'X-Queue-Position',
      'Server-Timing',
      'Allow',
      'WWW-Authenticate',
      'Warning',
    ],
    maxAge: 600,
  });
}
