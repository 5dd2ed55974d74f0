import type { Context } from 'hono';
import { matchedRoutes } from 'hono/route';
import type { AppEnv } from '../http/router';

/**
 * The template of the route whose handler answered (`/stream/{model_name}`), or `unmatched`:
 * label values stay few whatever paths clients send. Called in or after that handler, where
 * `routeIndex` points at it; a middleware (method ALL) there means no route answered.
 */
export function routeLabel(c: Context<AppEnv>): string {
  const route = matchedRoutes(c)[c.req.routeIndex];
  if (!route || route.method === 'ALL') return 'unmatched';
  let label = labelOf.get(route.path);
  if (label === undefined) {
    label = route.path.replace(/:([^/]+)/g, '{$1}');
    labelOf.set(route.path, label);
  }
  return label;
}
const labelOf = new Map<string, string>();
