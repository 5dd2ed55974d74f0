import type { Deps } from '../deps';
import { ApiError } from '../http/errors';
import { RESERVED_FIRST_SEGMENTS } from '../http/model-name';
import type { AppRouter } from '../http/router';
import type { Lifecycle } from '../lifecycle';
import { createCapabilityLookup } from '../ollama/capabilities';
import { registerOllamaApi } from './api';
import { registerOpenAiApi } from './v1';
import { chatRoutes } from './minato/chat';
import { generateRoutes } from './minato/generate';
import { installRoutes } from './minato/install';
import { modelsRoutes } from './minato/models';
import { visionRoutes } from './minato/vision';
import { registerDocsRoutes } from './ops/docs';
import { healthRoutes } from './ops/health';
import { metricsRoutes } from './ops/metrics';

/**
 * THE mount list, in order: operations, then Minato's own routes with the `GET /{model_name}`
 * catch-all last (it would otherwise capture the fixed paths). Adding a route is one folder and
 * one line here; `/api/*` (Ollama-native) and `/v1/*` (OpenAI) will go before Minato's routes.
 */
export function mountRoutes(app: AppRouter, deps: Deps & { lifecycle: Lifecycle }) {
  const { config, metrics, ollama, lifecycle } = deps;
  // Operations.
  // Only when MINATO_METRICS is on, so not in the app's type (hc<AppType>); a scraper needs no client.
  if (metrics) app.route('/', metricsRoutes(config, metrics));
  registerDocsRoutes(app);
  // Chained route modules carry their types into the app's (AppType, for hono/client).
  const probes = app.route('/', healthRoutes(deps, lifecycle));
  // Ollama's native API (/api/*), for the clients people already use.
  registerOllamaApi(app, deps);
  // OpenAI-compatible (/v1/*): Ollama's own /v1, relayed.
  registerOpenAiApi(app, deps);
  // Minato's own routes.
  const listed = probes.route('/', modelsRoutes(deps)).route('/', installRoutes(deps));
  const capabilities = createCapabilityLookup(ollama, config);
  const typed = listed.route('/', visionRoutes(deps, capabilities)).route('/', chatRoutes(deps, capabilities));
  app.use('/:model_name', async (c, next) => {
    // `GET /api`, `GET /v1`, …: reserved names are routes (or kept for later), never models.
    if (c.req.method === 'GET' && RESERVED_FIRST_SEGMENTS.has(c.req.param('model_name'))) {
      throw new ApiError(404, `No route ${c.req.path}. The API reference is at /docs.`, 'not_found');
    }
    await next();
  });
  return typed.route('/', generateRoutes(deps));
}
