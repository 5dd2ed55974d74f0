import type { Deps } from '../../ollama/generate';
import { answerStream, answerSync } from '../../ollama/generate';
import { isEventSourceReconnect, negotiateStreamFormat } from '../../lib/ndjson';
import { allowLongWait } from '../../lib/long-wait';
import { createMiddleware } from 'hono/factory';
import type { AppEnv, AppRouter } from '../../lib/router';
import { toGenerateRequest } from './generate.schemas';
import { generateStream, generateSync } from './generate.routes';

/**
 * Hono answers HEAD with the GET handler, which here would run a whole generation on the GPU to
 * throw its body away. Generation routes answer HEAD with 405 instead.
 */
const noHead = createMiddleware<AppEnv>(async (c, next) => {
  if (c.req.method === 'HEAD') return c.body(null, 405, { Allow: 'GET' });
  await next();
});

export function registerGenerateRoutes(app: AppRouter, deps: Deps) {
  app.openapi({ ...generateStream, middleware: [noHead, allowLongWait] }, async (c) => {
    const { model_name } = c.req.valid('param');
    const format = negotiateStreamFormat(c.req.header('accept'));
    if (format === 'sse' && isEventSourceReconnect(c.req)) return c.body(null, 204);
    const body = toGenerateRequest(model_name, c.req.valid('query'));
    return answerStream(deps, body, c.req.raw.signal, format, c.var.observeStream) as never;
  });

  app.openapi({ ...generateSync, middleware: [noHead, allowLongWait] }, async (c) => {
    const { model_name } = c.req.valid('param');
    const body = toGenerateRequest(model_name, c.req.valid('query'));
    return c.json((await answerSync(deps, body, c.req.raw.signal)) as never, 200);
  });
}
