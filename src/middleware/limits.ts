import type { Context, Next } from 'hono';
import { createMiddleware } from 'hono/factory';
import type { Config } from '../config';
import { ApiError } from '../http/errors';
import { factsOf, type RouteFacts } from '../http/route-facts';
import { readBodyLimited } from '../uploads/images';
import type { Lifecycle } from '../lifecycle';
import { type AppEnv, hasParsedHost } from '../http/router';

/**
 * Refuses what is too big before anything else reads it, each with its own status and a JSON
 * body: a URL over MINATO_MAX_URL_BYTES (414), header lines over MINATO_MAX_HEADER_BYTES (431),
 * a declared body over MINATO_MAX_BODY_BYTES on routes that take no images (413). Bun cuts the
 * request line plus headers itself at `--max-http-header-size` (raised by `bun run start`) with
 * an empty 431; these limits sit below it so that clients get a reason.
 *
 * While draining for shutdown, new work gets a 503 that says so.
 */
export function requestLimits(config: Config, lifecycle: Lifecycle) {
  // Synchronous but for a chunked body (read and counted here): no async frame on every request.
  return createMiddleware<AppEnv>((c, next) => {
    const url = c.req.url;
    // The request target: the URL from its path on (Bun leaves the URL relative for a bad Host).
    const target = hasParsedHost(url) ? url.length - url.indexOf('/', url.indexOf('//') + 2) : url.length;
    if (target > config.maxUrlBytes) {
      throw new ApiError(
        414,
        `The URL is ${target} bytes long; the limit is ${config.maxUrlBytes} (MINATO_MAX_URL_BYTES). Long prompts: shorten them, or raise the limit.`,
        'uri_too_long',
      );
    }
    let headerBytes = 0;
    c.req.raw.headers.forEach((value, name) => {
      headerBytes += name.length + value.length + 4;
    });
    if (headerBytes > config.maxHeaderBytes) {
      throw new ApiError(
        431,
        `The request headers take ${headerBytes} bytes; the limit is ${config.maxHeaderBytes} (MINATO_MAX_HEADER_BYTES).`,
        'headers_too_large',
      );
    }
    // The route's own facts: an upload route counts its body itself; a JSON route may take more
    // than the default (chat); everything else at most MINATO_MAX_BODY_BYTES.
    const facts = factsOf(c);
    if (!facts?.readsOwnBody) {
      const limit = facts?.bodyLimit?.(config) ?? config.maxBodyBytes;
      const overLimit = (what: string) =>
        new ApiError(
          413,
          `The body is ${what} bytes; this route takes at most ${limit}${facts?.bodyLimit ? '' : ' (MINATO_MAX_BODY_BYTES)'}.`,
          'body_too_large',
        );
      const length = c.req.header('content-length');
      if (Number(length ?? 0) > limit) throw overLimit(String(Number(length)));
      // A chunked body declares no length: it is counted as it is read, refused past the limit,
      // and kept for the route to parse (Hono reads it from this cache).
      if (length === undefined && c.req.header('transfer-encoding') !== undefined && c.req.raw.body) {
        return readBodyLimited(c.req.raw, limit, () => overLimit('over')).then((bytes) => {
          (c.req as unknown as { bodyCache: { arrayBuffer?: Promise<ArrayBuffer> } }).bodyCache.arrayBuffer = Promise.resolve(
            bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer,
          );
          return admit(c, next, facts);
        });
      }
    }
    return admit(c, next, facts);
  });

  /** The last checks, once the body is known to be within its limit. */
  function admit(c: Context<AppEnv>, next: Next, facts: RouteFacts | undefined) {
    if (facts?.longWait) c.env?.server?.timeout(c.req.raw, 0);
    if (lifecycle.draining && !facts?.duringDrain) {
      throw new ApiError(503, 'Minato is shutting down. Retry on another instance, or in a few seconds.', 'shutting_down', {
        'Retry-After': '5',
        Connection: 'close',
      });
    }
    return next();
  }
}
