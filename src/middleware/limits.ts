import { createMiddleware } from 'hono/factory';
import type { Config } from '../config';
import { ApiError } from '../http/errors';
import { readBodyChunks } from '../uploads/images';
import type { Lifecycle } from '../lifecycle';
import { type AppEnv, hasParsedHost } from '../http/router';

/** Routes whose bodies are image uploads, bounded by MINATO_MAX_IMAGES × MINATO_MAX_IMAGE_BYTES instead. */
const IMAGE_ROUTES = /^\/(stream\/)?vision\//;

/** Paths that still answer while Minato drains: the probes that report it, and the metrics that watch it. */
const DURING_DRAIN = new Set(['/health', '/ready', '/metrics']);

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
  return createMiddleware<AppEnv>(async (c, next) => {
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
    const length = c.req.header('content-length');
    const declared = Number(length ?? 0);
    const takesImages = IMAGE_ROUTES.test(c.req.path);
    if (declared > config.maxBodyBytes && !takesImages) {
      throw new ApiError(
        413,
        `The body is ${declared} bytes; this route takes at most ${config.maxBodyBytes} (MINATO_MAX_BODY_BYTES).`,
        'body_too_large',
      );
    }
    // A chunked body declares no length: it is counted as it is read, and refused past the limit.
    if (length === undefined && !takesImages && c.req.header('transfer-encoding') !== undefined && c.req.raw.body) {
      const overLimit = (limit: number) =>
        new ApiError(413, `The body is over ${limit} bytes; this route takes at most that (MINATO_MAX_BODY_BYTES).`, 'body_too_large');
      await readBodyChunks(c.req.raw, config.maxBodyBytes, () => {}, overLimit);
    }
    if (lifecycle.draining && !DURING_DRAIN.has(c.req.path)) {
      throw new ApiError(503, 'Minato is shutting down. Retry on another instance, or in a few seconds.', 'shutting_down', {
        'Retry-After': '5',
        Connection: 'close',
      });
    }
    await next();
  });
}
