import { createHash, timingSafeEqual } from 'node:crypto';
import { createRoute, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { matchedRoutes } from 'hono/route';
import type { Config } from '../../config';
import type { Metrics } from '../../lib/metrics';
import type { AppEnv, AppRouter } from '../../lib/router';
import { jsonError } from '../shared.schemas';

const STREAM_TYPES = /^(application\/x-ndjson|text\/event-stream|text\/plain)/;

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

const digest = (value: string) => createHash('sha256').update(value).digest();

const metricsRoute = createRoute({
  method: 'get',
  path: '/metrics',
  operationId: 'metrics',
  tags: ['Operations'],
  summary: 'Prometheus metrics',
  description:
    "Requests by route and status, duration and time-to-first-byte histograms, streams in flight, upstream errors by kind, and per model the tokens generated and tokens/s from Ollama's final lines. When MINATO_METRICS_KEY is set, send it as `Authorization: Bearer <key>`.",
  responses: {
    200: {
      content: { 'text/plain': { schema: z.string().openapi({ example: 'minato_streams_in_flight 3\n' }) } },
      description: 'Prometheus text format 0.0.4.',
    },
    401: jsonError('MINATO_METRICS_KEY is set and the request did not carry it.'),
  },
});

/**
 * Records every request into `metrics`. A streamed response is counted when its stream ends
 * (the relay reports it), so its duration is the whole stream, not the time to its headers.
 */
export function registerMetrics(app: AppRouter, config: Config, metrics: Metrics) {
  app.use('*', async (c, next) => {
    const startedAt = performance.now();
    let streaming = false;
    c.set('observeStream', () => {
      streaming = true;
      return metrics.stream(routeLabel(c), c.req.method, startedAt);
    });
    await next();
    if (!streaming || !STREAM_TYPES.test(c.res.headers.get('content-type') ?? '')) {
      metrics.request(routeLabel(c), c.req.method, c.res.status, (performance.now() - startedAt) / 1000);
    }
  });

  const expected = config.metricsKey === undefined ? undefined : digest(config.metricsKey);
  app.openapi(metricsRoute, (c) => {
    if (expected) {
      const given = /^Bearer\s+(.+)$/i.exec(c.req.header('authorization') ?? '')?.[1] ?? '';
      // Compare digests, in constant time, so neither the key nor its length leaks through timing.
      if (!timingSafeEqual(digest(given), expected)) {
        return c.json({ detail: 'Send the metrics key as Authorization: Bearer <MINATO_METRICS_KEY>.', code: 'unauthorized' }, 401, {
          'WWW-Authenticate': 'Bearer realm="minato-metrics"',
        });
      }
    }
    return c.text(metrics.render(), 200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' });
  });
}
