import { createMiddleware } from 'hono/factory';
import type { Config } from '../config';
import { ApiError } from '../http/errors';
import { type AppEnv, hasParsedHost } from '../http/router';

/** A loopback name or address: `localhost`, `*.localhost`, 127.0.0.0/8, `::1`. */
export function isLoopbackHostname(hostname: string): boolean {
  const name = hostname.toLowerCase().replace(/\.$/, '');
  return (
    name === 'localhost' ||
    name.endsWith('.localhost') ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(name) ||
    name === '[::1]' ||
    name === '::1' ||
    name === '[::ffff:127.0.0.1]'
  );
}

/** The host name of a `Host` header value or an origin's authority, without the port, lower-cased. */
function hostnameOf(authority: string): string {
  const value = authority.toLowerCase();
  if (value.startsWith('[')) return value.slice(0, value.indexOf(']') + 1);
  const colon = value.lastIndexOf(':');
  return (colon === -1 ? value : value.slice(0, colon)).replace(/\.$/, '');
}

/**
 * Whether an `Origin` header names a page served from this machine (`http://localhost:5173`,
 * `http://127.0.0.1`) or from one of `hosts` (the names Minato itself is reached by, so that
 * /docs served under such a name can call it).
 */
export function isLocalOrigin(origin: string, hosts: ReadonlySet<string> = new Set()): boolean {
  const match = /^https?:\/\/([^/]+)$/i.exec(origin);
  if (match === null) return false;
  const name = hostnameOf(match[1]!);
  return isLoopbackHostname(name) || hosts.has(name);
}

/** Answers whatever the Host and Origin: the liveness probe. */
const EXEMPT = new Set(['/health']);

/**
 * Ollama's own guard against DNS rebinding and cross-site requests, kept for the keyless mode.
 * Ollama answers 403 to a Host that is not local and to a browser Origin it does not allow; Minato
 * calls Ollama with its own loopback Host, so without this a page the user merely visits could
 * use the GPU through Minato (a `no-cors` request starts a pull; after a DNS rebind the page can
 * read answers too). With API keys configured the key is the guard and this is not installed.
 *
 * A Host Bun could not parse is refused with 400 on every path, keys or not, so that nothing is
 * routed, logged or linked on the strength of a malformed Host.
 */
export function hostGuard(config: Config) {
  const keyless = config.apiKeys.length === 0;
  const anyHost = config.allowedHosts.includes('*');
  const hosts = new Set(config.allowedHosts);
  const anyOrigin = config.corsOrigins.includes('*');
  const origins = new Set(config.corsOrigins.map((origin) => origin.toLowerCase()));
  // Synchronous (no async frame or promise of its own): it only checks, on every request.
  return createMiddleware<AppEnv>((c, next) => {
    const host = c.req.header('host');
    if (!hasParsedHost(c.req.raw.url) && host !== undefined && host !== '') {
      throw new ApiError(400, 'The Host header is not a valid host name (host[:port]).', 'bad_host');
    }
    if (keyless && !EXEMPT.has(c.req.path)) {
      // A request without a Host (HTTP/1.0) comes from no browser: DNS rebinding always sends one.
      if (host) {
        const name = hostnameOf(host);
        if (!anyHost && !isLoopbackHostname(name) && !hosts.has(name)) {
          throw new ApiError(
            403,
            `Host '${name.slice(0, 100)}' is not allowed: without API keys Minato answers only requests addressed to this machine's loopback names (as Ollama does, against DNS rebinding). Reach it as 127.0.0.1 or localhost, add the name to MINATO_ALLOWED_HOSTS, or set MINATO_API_KEYS.`,
            'host_not_allowed',
          );
        }
      }
      const origin = c.req.header('origin');
      if (origin !== undefined) {
        if (!anyOrigin && !isLocalOrigin(origin, hosts) && !origins.has(origin.toLowerCase())) {
          throw new ApiError(
            403,
            `Origin '${origin.slice(0, 100)}' is not allowed: without API keys only pages served from this machine may call Minato. List the origin in CORS_ORIGINS, or set MINATO_API_KEYS.`,
            'origin_not_allowed',
          );
        }
      } else if (!anyOrigin) {
        // Browsers send no Origin with a no-cors GET (a fetch, an <img>, a <script>), but they do
        // send Fetch Metadata: a request another site's page made is refused all the same.
        const site = c.req.header('sec-fetch-site');
        if (site === 'cross-site' || site === 'same-site') {
          throw new ApiError(
            403,
            "A page from another site may not call Minato without API keys (Sec-Fetch-Site: cross-site). Open it from this machine, list the page's origin in CORS_ORIGINS and send Origin (a CORS request), or set MINATO_API_KEYS.",
            'origin_not_allowed',
          );
        }
      }
    }
    return next();
  });
}
