import type { Context } from 'hono';
import { matchedRoutes } from 'hono/route';
import type { Config } from '../config';
import type { Surface } from './render-error';

/**
 * What global middleware needs to know about the route a request is for, declared with the route
 * itself (`withFacts(route, facts)`) instead of in central lists of paths.
 */
export type RouteFacts = {
  /**
   * The route reads its body itself, counting it as it arrives (uploads): global limits leave it
   * alone, and this is the most it may take.
   */
  readsOwnBody?: (config: Config) => number;
  /** The most a JSON body may take, counted as it is read (default MINATO_MAX_BODY_BYTES). */
  bodyLimit?: (config: Config) => number;
  /** The body is parsed whole into objects (several times its size): it counts for more of MINATO_BODY_BUDGET. */
  parsesBody?: boolean;
  /** Still answers while Minato drains for shutdown (probes and metrics). */
  duringDrain?: boolean;
  /** The API dialect its errors are rendered in (default Minato's own `{detail, code}`). */
  surface?: Surface;
  /**
   * The route waits on Ollama without being a generation (a pull, an install, a blob upload),
   * silent for minutes. Bun.serve closes a connection silent for `idleTimeout` seconds (10), which
   * would cut it; for these routes Bun's idle timer is switched off once the key's scope is checked
   * and switched back on when the answer ends (generations: while they hold an admission slot).
   * Minato's own deadlines bound the wait instead.
   */
  longWait?: boolean;
};

const facts = new Map<string, RouteFacts>();
const keyOf = (method: string, honoPath: string) => `${method.toUpperCase()} ${honoPath}`;

/** Declares `routeFacts` for a route (`{ method, path }` as in createRoute, `{param}` style), and returns the route. */
export function withFacts<R extends { method: string; path: string }>(route: R, routeFacts: RouteFacts): R {
  facts.set(keyOf(route.method, route.path.replace(/\{([^}]+)\}/g, ':$1')), routeFacts);
  return route;
}

/** The facts of the route this request matched, if any (usable in global middleware: routing is done). */
export function factsOf(c: Context): RouteFacts | undefined {
  // The first route that is not a middleware is the one that answers (a path may match several:
  // `/health` matches `GET /{model_name}` too, registered later).
  const routes = matchedRoutes(c);
  for (let i = 0; i < routes.length; i++) {
    const route = routes[i]!;
    if (route.method === 'ALL') continue;
    // Looked up once per route (several middlewares ask on every request).
    let found = factsByRoute.get(route);
    if (found === undefined) {
      found = facts.get(keyOf(route.method, route.path)) ?? NONE;
      factsByRoute.set(route, found);
    }
    return found === NONE ? undefined : found;
  }
  return undefined;
}
const NONE: RouteFacts = {};
const factsByRoute = new WeakMap<object, RouteFacts>();

/** Every route that reads its own body: Bun.serve's own bound must sit above the largest. */
export const ownBodyLimits = (config: Config) =>
  [...facts.values()].flatMap((f) => [f.readsOwnBody?.(config) ?? 0, f.bodyLimit?.(config) ?? 0]);
