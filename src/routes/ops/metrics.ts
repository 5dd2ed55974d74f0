import { createRoute, z } from '@hono/zod-openapi';
import { withFacts } from '../../http/route-facts';
import type { Config } from '../../config';
import type { Metrics } from '../../observability/metrics';
import { createRouter } from '../../http/router';
import { secured } from '../../middleware/auth';

const metricsRoute = withFacts(
  createRoute({
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
  }),
  { duringDrain: true },
);

/** Serves `metrics` at /metrics (requests are recorded by the request-context middleware). */
export function metricsRoutes(config: Config, metrics: Metrics) {
  return createRouter().openapi(secured(config, metricsRoute, 'metrics'), (c) =>
    c.text(metrics.render(), 200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' }),
  );
}
