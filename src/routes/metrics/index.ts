import { createRoute, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { matchedRoutes } from 'hono/route';
import type { Config } from '../../config';
import type { Metrics } from '../../lib/metrics';
import type { AppEnv, AppRouter } from '../../lib/router';
import { secured } from '../../middleware/auth';

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

const metricsRoute = createRoute({
  method: 'get',
  path: '/metrics',
  operationId: 'metrics',
  tags: ['Operations'],
  summary: 'Prometheus metrics',
  description:
    "Requests by route and status, duration and time-to-first-byte histograms, streams in flight, upstream errors by kind, and per model the tokens generated and tokens/s from Ollama's final lines. Needs a key with the `metrics` scope (or `admin`) unless MINATO_PUBLIC_PATHS lists /metrics.",
  responses: {
    200: {
      content: { 'text/plain': { schema: z.string().openapi({ example: 'minato_streams_in_flight 3\n' }) } },
      description: 'Prometheus text format 0.0.4.',
    },
  },
});

/** Serves `metrics` at /metrics (requests are recorded by the request-context middleware). */
export function registerMetrics(app: AppRouter, config: Config, metrics: Metrics) {
  app.openapi(secured(config, metricsRoute, 'metrics'), (c) =>
    c.text(metrics.render(), 200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' }),
  );
}
