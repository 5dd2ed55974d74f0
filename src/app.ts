import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { ApiError, ClientGoneError } from './http/errors';
import { errorPayload, type Surface, surfaceOfPath } from './http/render-error';
import { factsOf } from './http/route-facts';
import { RESERVED_FIRST_SEGMENTS } from './http/model-name';
import { createMetrics } from './observability/metrics';
import { type AppEnv, type AppRouter, createRouter } from './http/router';
import { createAdmission } from './admission/queue';
import { createLifecycle } from './lifecycle';
import { createRateLimiter, createRedisRateLimiter } from './security/rate-limit';
import { authenticate } from './middleware/auth';
import { corsFor } from './middleware/cors';
import { hostGuard } from './security/host-guard';
import { requestLimits } from './middleware/limits';
import { requestContext } from './middleware/request-context';
import { createOllamaClient } from './ollama/client';
import { createFleet } from './ollama/fleet';
import { writeLine } from './observability/log-writer';
import { bodyReadFailure, createBodyBudget } from './http/body';
import { createClientAddress } from './security/client-address';

import type { AppDependencies } from './deps';
import { mountRoutes } from './routes';

export type { AppDependencies } from './deps';

/** Route patterns by method, for telling a wrong method (405) from an unknown path (404). */
function routeTable(app: AppRouter): { method: string; path: string; pattern: RegExp }[] {
  return app.routes
    .filter((route) => route.method !== 'ALL')
    .map((route) => ({
      method: route.method,
      path: route.path,
      pattern: new RegExp(`^${route.path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/\/:[^/]+/g, '/[^/]+')}$`),
    }));
}

export function createApp({
  config,
  metrics = config.metrics ? createMetrics() : undefined,
  lifecycle = createLifecycle(),
  log = config.logRequests ? writeLine : undefined,
  ...given
}: AppDependencies) {
  const app = createRouter();
  const logLine = (level: 'warn' | 'info', msg: string, fields: Record<string, unknown> = {}) => {
    const line = JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields });
    if (log) log(line);
    else writeLine(line);
  };
  // Several Ollama instances (OLLAMA_HOSTS): routed by model residency; one behaves as it always has.
  const fleet =
    given.fleet ??
    (config.ollamaHosts.length > 1
      ? createFleet({
          urls: config.ollamaHosts,
          checkDeadline: config.metadata,
          refreshMs: config.fleetRefreshMs,
          onWaiting: metrics?.waiting,
          // Every change but the first check finding an instance up (which is the expected start).
          onStateChange: (instance, previous) => {
            if (previous === 'unknown' && instance.state !== 'down') return;
            logLine(instance.state === 'down' ? 'warn' : 'info', `ollama instance ${instance.state}`, {
              instance: instance.name,
              reason: instance.reason,
            });
          },
        })
      : undefined);
  fleet?.start();
  if (fleet) lifecycle.onClose(fleet.stop);
  const ollama = given.ollama ?? fleet?.client ?? createOllamaClient({ baseUrl: config.ollamaHost, onWaiting: metrics?.waiting });
  const admission = createAdmission({
    perModel: config.maxConcurrentPerModel,
    total: config.maxConcurrent,
    perOwner: config.maxConcurrentPerKey,
    queuePerModel: config.maxQueuePerModel,
    queueTotal: config.maxQueue,
    timeoutMs: config.queueWait.ms,
  });
  const bodyBudget = createBodyBudget(config.bodyBudgetBytes);
  const deps = { config, ollama, metrics, admission, fleet, bodyBudget };

  // Outermost first: every response gets its request id and log line, even a refused one.
  app.use('*', requestContext({ metrics, lifecycle, log, clientAddress: createClientAddress(config.trustedProxies) }));
  app.use('*', hostGuard(config));
  app.use('*', requestLimits(config, lifecycle, bodyBudget));
  if (config.corsOrigins.length > 0) app.use('*', corsFor(config.corsOrigins));
  // Per-key limits in Redis when several replicas share them (MINATO_REDIS_URL), else in this process.
  app.use(
    '*',
    authenticate(
      config,
      config.redisUrl ? createRedisRateLimiter(config.redisUrl, logLine, { timeoutMs: config.redisCommand.ms }) : createRateLimiter(),
    ),
  );

  if (metrics) {
    metrics.gauge('minato_queue_waiting', "Generations waiting in Minato's queue for a slot.", () => admission.queued);
    metrics.gauge('minato_generations_running', 'Generations holding a slot (sent to Ollama).', () => admission.running);
    if (fleet) {
      metrics.labelledGauge('minato_instance_up', 'Whether each Ollama instance answered its last check (1) or not (0).', () =>
        fleet.instances.map((instance) => [{ instance: instance.name }, instance.state === 'down' ? 0 : 1]),
      );
      metrics.labelledGauge('minato_instance_generations_running', 'Generations in flight from Minato on each Ollama instance.', () =>
        fleet.instances.map((instance) => [{ instance: instance.name }, admission.runningOn(instance.name)]),
      );
    }
  }
  const routes = mountRoutes(app, { ...deps, lifecycle });
  const table = routeTable(app);

  /** Every error Minato answers, in the dialect of the route that answered (unmatched paths: of the path). */
  const render = (c: Context<AppEnv>, error: ApiError, surface: Surface = factsOf(c)?.surface ?? 'minato') => {
    c.var.record.errorCode = error.code;
    const body = JSON.stringify(errorPayload(surface, error));
    c.var.record.bytes = Buffer.byteLength(body);
    return c.body(body, error.statusCode, { ...error.headers, 'Content-Type': 'application/json' });
  };

  app.notFound((c) => {
    // A reserved first segment (`/api`, `/v1`, …) is never the model of `GET /{model_name}`.
    const reserved = RESERVED_FIRST_SEGMENTS.has(c.req.path.split('/')[1] ?? '');
    const allowed = [
      ...new Set(
        table
          .filter((route) => route.pattern.test(c.req.path) && !(reserved && route.path === '/:model_name'))
          .map((route) => route.method),
      ),
    ];
    if (allowed.length > 0) {
      return render(
        c,
        new ApiError(405, `Method ${c.req.method} is not allowed on ${c.req.path}; use ${allowed.join(', ')}.`, 'method_not_allowed', {
          Allow: allowed.join(', '),
        }),
        surfaceOfPath(c.req.path),
      );
    }
    // In the dialect of the path's surface: Ollama's and OpenAI's clients read their own shapes.
    const surface = surfaceOfPath(c.req.path);
    const where = surface === 'ollama' ? " in Minato's Ollama API" : surface === 'openai' ? " in Minato's OpenAI-compatible API" : '';
    return render(
      c,
      new ApiError(404, `No route ${c.req.path}${where}.${surface === 'openai' ? '' : ' The API reference is at /docs.'}`, 'not_found'),
      surface,
    );
  });

  app.onError((thrown, c) => {
    // A validator's 400 for a body that could not be read: the reason it could not (408, 413, 503).
    const error = thrown instanceof HTTPException && thrown.status === 400 ? (bodyReadFailure(c.req.raw) ?? thrown) : thrown;
    // The client went away (an abandoned upload, a closed stream): nobody to answer, nothing wrong.
    if (error instanceof ClientGoneError || c.req.raw.signal.aborted) return new Response(null, { status: 499 });
    if (error instanceof ApiError) {
      if (error.code.startsWith('upstream_')) metrics?.upstreamError(error.code.slice('upstream_'.length), c.var.record.instance);
      return render(c, error);
    }
    if (error instanceof HTTPException) {
      // zod-openapi's own content-type gate on the vision and chat routes answers 415 before the handler runs.
      if (error.status === 415) {
        const chat = /^\/(stream\/)?chat\//.test(c.req.path);
        return render(
          c,
          new ApiError(
            415,
            chat
              ? 'Send the conversation as application/json: {"messages": [{"role": "user", "content": "Hi"}]}.'
              : 'Send images as multipart/form-data (files in the field "images") or as application/json {"images": ["<base64>"]}.',
            'unsupported_media_type',
          ),
        );
      }
      return render(c, new ApiError(error.status, error.message || 'Bad request', 'bad_request'));
    }
    console.error(JSON.stringify({ level: 'error', msg: 'unhandled error', path: c.req.path, error: String(error) }));
    return render(c, new ApiError(500, 'Internal error in Minato. It has been logged.', 'internal_error'));
  });

  return routes;
}

/** The app's type, for typed calls with `hc<AppType>(url)` from `hono/client`. */
export type AppType = ReturnType<typeof createApp>;
