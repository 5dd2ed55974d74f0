import { ApiError } from '../../http/errors';
import { createRoute, z } from '@hono/zod-openapi';
import { withFacts } from '../../http/route-facts';
import type { Lifecycle } from '../../lifecycle';
import { createRouter } from '../../http/router';
import { anyKey } from '../../middleware/auth';
import { readUpstreamError } from '../../ollama/client';
import type { Deps } from '../../deps';
import { jsonError } from '../../openapi/schemas';
import { listedName } from '../../ollama/fleet';

const Health = z.object({ status: z.literal('ok') }).openapi('Health');
const Ready = z
  .object({
    status: z.literal('ready'),
    ollama: z
      .object({
        url: z.string().openapi({ example: 'http://127.0.0.1:11434' }),
        version: z.string().openapi({ example: '0.33.0' }),
      })
      .optional()
      .openapi({ description: "Ollama's address and version: only for a request with a valid key when keys are configured." }),
    instances: z
      .array(
        z.object({
          host: z.string().openapi({ example: '10.0.0.7:11434' }),
          url: z.string().openapi({ example: 'http://10.0.0.7:11434' }),
          state: z.enum(['up', 'down', 'unknown']),
          reason: z.string().optional().openapi({ description: 'Why it is down.' }),
          version: z.string().optional().openapi({ example: '0.33.0' }),
          installed: z.number().int().openapi({ description: 'Models installed there.' }),
          loaded: z.array(z.string()).openapi({ description: 'Models loaded there now.', example: ['llama3.2:latest'] }),
        }),
      )
      .optional()
      .openapi({
        description:
          'With several Ollama instances (OLLAMA_HOSTS): each one, from its last check (every MINATO_FLEET_REFRESH seconds; a down one every second). Only for a valid key when keys are configured.',
      }),
  })
  .openapi('Ready');

const health = withFacts(
  createRoute({
    method: 'get',
    path: '/health',
    operationId: 'health',
    tags: ['Operations'],
    summary: 'Liveness: the sidecar is up (never calls Ollama)',
    responses: { 200: { content: { 'application/json': { schema: Health } }, description: 'Up.' } },
  }),
  { duringDrain: true },
);

const ready = withFacts(
  createRoute({
    method: 'get',
    path: '/ready',
    operationId: 'ready',
    tags: ['Operations'],
    summary: 'Readiness: Ollama answers, with its version',
    description: 'With several Ollama instances (OLLAMA_HOSTS), 200 while at least one of them answers, listing each with its state.',
    responses: {
      200: { content: { 'application/json': { schema: Ready } }, description: 'Ollama is reachable.' },
      503: jsonError(
        'Ollama is not reachable or not healthy (`not_ready`), or Minato is draining for shutdown (`draining`).',
        'not_ready',
        'Ollama at http://127.0.0.1:11434 is not ready: Unable to connect. Check that Ollama is running and that OLLAMA_HOST points at it.',
      ),
    },
  }),
  { duringDrain: true },
);

const notReadyHidden =
  'Ollama is not ready. Check that Ollama is running and that OLLAMA_HOST points at it; a request with an API key gets the details.';

/** `GET /health` and `GET /ready`, chained so that the app's type carries them for `hc<AppType>()`. */
export function healthRoutes({ config, ollama, fleet }: Deps, lifecycle: Lifecycle) {
  return createRouter()
    .openapi(anyKey(config, health), (c) => c.json({ status: 'ok' as const }, 200))
    .openapi(anyKey(config, ready), async (c) => {
      // With keys configured, Ollama's address and version are for key holders; the status is for anyone.
      const details = config.apiKeys.length === 0 || c.var.apiKey !== undefined;
      if (lifecycle.draining) {
        // A balancer takes it out of rotation; what is in flight finishes (MINATO_SHUTDOWN_GRACE).
        return c.json(
          { detail: 'Minato is draining for shutdown: it finishes what is in flight and takes no new work.', code: 'draining' },
          503,
          { 'Retry-After': '5' },
        );
      }
      const notReady = (why: string) =>
        c.json(
          {
            detail: details
              ? `Ollama at ${ollama.baseUrl} is not ready: ${why.replace(/\.$/, '')}. Check that Ollama is running and that OLLAMA_HOST points at it.`
              : notReadyHidden,
            code: 'not_ready',
          },
          503,
        );
      if (fleet) {
        // The background checks' view (a down instance is checked every second); at start, a check now.
        if (fleet.instances.every((instance) => instance.state === 'unknown')) await fleet.refresh();
        const instances = fleet.instances.map((instance) => ({
          host: instance.name,
          url: instance.url,
          state: instance.state,
          ...(instance.reason !== undefined && { reason: instance.reason }),
          ...(instance.version !== undefined && { version: instance.version }),
          installed: instance.installed.size,
          loaded: [...instance.loaded.values()].map(listedName),
        }));
        if (instances.some((instance) => instance.state === 'up')) {
          return c.json({ status: 'ready' as const, ...(details && { instances }) }, 200);
        }
        return notReady(
          `no instance answers (${instances.map((instance) => `${instance.url}: ${instance.reason ?? instance.state}`).join('; ')})`,
        );
      }
      try {
        const { response } = await ollama.call('/api/version', undefined, {
          signal: c.req.raw.signal,
          deadline: { ms: Math.min(config.metadata.ms, 2000), setting: config.metadata.setting },
        });
        if (!response.ok) return notReady(`HTTP ${response.status} (${await readUpstreamError(response)})`);
        const { version } = (await response.json()) as { version?: unknown };
        if (!details) return c.json({ status: 'ready' as const }, 200);
        return c.json({ status: 'ready' as const, ollama: { url: ollama.baseUrl, version: String(version ?? 'unknown') } }, 200);
      } catch (error) {
        // Minato's own errors already say what to check: not said twice.
        if (error instanceof ApiError)
          return c.json({ detail: details ? `Not ready: ${error.detail}` : notReadyHidden, code: 'not_ready' }, 503);
        return notReady((error as Error).message);
      }
    });
}
