import { createMiddleware } from 'hono/factory';
import type { Config } from '../config';
import { ApiError } from '../http/errors';
import { factsOf } from '../http/route-facts';
import { type BodyBudget, DeferredBody, deferBody } from '../http/body';
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
export function requestLimits(config: Config, lifecycle: Lifecycle, budget: BodyBudget) {
  // Synchronous: no async frame on every request.
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
    if (lifecycle.draining && !facts?.duringDrain) {
      throw new ApiError(503, 'Minato is shutting down. Retry on another instance, or in a few seconds.', 'shutting_down', {
        'Retry-After': '5',
        Connection: 'close',
      });
    }
    if (facts?.readsOwnBody || c.req.raw.body === null) return next();
    const limit = facts?.bodyLimit?.(config) ?? config.maxBodyBytes;
    const overLimit = (what: string) =>
      new ApiError(
        413,
        `The body is ${what} bytes; this route takes at most ${limit}${facts?.bodyLimit ? '' : ' (MINATO_MAX_BODY_BYTES)'}.`,
        'body_too_large',
      );
    // A declared length over the limit is refused now, whatever the route; the body itself is
    // read only when the handler asks for it (after the key, scope and admission checks), within
    // the limit, the upload deadline and the budget of all bodies in flight.
    const length = c.req.header('content-length');
    if (length !== undefined && Number(length) > limit) throw overLimit(String(Number(length)));
    const body = new DeferredBody(c.req.raw, {
      limit,
      overLimit,
      budget,
      weight: facts?.parsesBody ? PARSED_BODY_WEIGHT : 1,
      timeoutMs: config.bodyUpload.ms,
    });
    deferBody(c, body);
    return next().finally(() => body.release());
  });
}

/** Budget bytes per body byte for a body parsed whole (text, then objects and strings: measured ≈ 3–4×). */
export const PARSED_BODY_WEIGHT = 4;
