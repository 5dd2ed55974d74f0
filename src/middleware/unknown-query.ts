import { createMiddleware } from 'hono/factory';
import { ApiError } from '../http/errors';
import type { AppEnv } from '../http/router';

/**
 * Query parameters a route does not know are accepted, as the original service accepted them and
 * clients send extras, but never silently: the answer carries a `Warning` header naming them
 * (`299 minato "Unknown query parameters ignored: temprature"`) and the request log an
 * `ignored_params` field, so that a typo (`temprature=0.7`) can be seen.
 */
export const warnUnknownQuery = (known: ReadonlySet<string>, { refuseHead = false } = {}) =>
  // Synchronous in the usual case (no unknown parameter): no async frame on every request.
  createMiddleware<AppEnv>((c, next) => {
    // Hono answers HEAD with the GET handler, which on a generation route would run a whole
    // generation on the GPU to throw its body away: those routes answer HEAD with 405 instead.
    // (Here rather than in a middleware of its own: every layer costs each request.)
    if (refuseHead && c.req.method === 'HEAD') {
      throw new ApiError(405, 'HEAD would run a whole generation to throw its answer away: send GET.', 'method_not_allowed', {
        Allow: 'GET',
      });
    }
    if (!c.req.url.includes('?')) return next();
    const unknown = Object.keys(c.req.queries()).filter((name) => !known.has(name));
    if (unknown.length === 0) return next();
    // Names as safe header text: a client's parameter name never adds quotes or lines to a header.
    const names = unknown.slice(0, 10).map((name) => name.slice(0, 40).replace(/[^\w.-]/g, '?'));
    c.var.record.ignoredParams = names;
    return next().then(() => {
      const warning = `299 minato "Unknown query parameters ignored: ${names.join(', ')}${unknown.length > 10 ? ', …' : ''}"`;
      try {
        c.res.headers.set('Warning', warning);
      } catch {
        c.res = new Response(c.res.body, c.res);
        c.res.headers.set('Warning', warning);
      }
    });
  });
