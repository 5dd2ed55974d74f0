import type { Deps } from '../../../deps';
import { answerStream, answerSync } from '../../../ollama/generate';
import { isEventSourceReconnect, negotiateStreamFormat } from '../../../streaming/ndjson';
import { allowLongWait } from '../../../http/long-wait';
import { createMiddleware } from 'hono/factory';
import type { AppEnv, AppRouter } from '../../../http/router';
import { secured } from '../../../middleware/auth';
import { admittedStream, admittedSync } from '../../../admission/admitted';
import { GENERATION_PARAMS, toGenerateRequest } from './generate.schemas';
import { warnUnknownQuery } from '../../../middleware/unknown-query';
import { generateStream, generateSync } from './generate.routes';

/**
 * Hono answers HEAD with the GET handler, which here would run a whole generation on the GPU to
 * throw its body away. Generation routes answer HEAD with 405 instead.
 */
const noHead = createMiddleware<AppEnv>(async (c, next) => {
  if (c.req.method === 'HEAD') return c.body(null, 405, { Allow: 'GET' });
  await next();
});

const unknownQuery = warnUnknownQuery(GENERATION_PARAMS);

export function registerGenerateRoutes(app: AppRouter, deps: Deps) {
  const { config } = deps;
  app.openapi(secured(config, { ...generateStream, middleware: [noHead, allowLongWait, unknownQuery] }, 'generate'), async (c) => {
    const { model_name } = c.req.valid('param');
    const format = negotiateStreamFormat(c.req.header('accept'));
    if (format === 'sse' && isEventSourceReconnect(c.req)) return c.body(null, 204);
    const body = toGenerateRequest(model_name, c.req.valid('query'));
    return admittedStream(c, deps, model_name, format, (observe) => answerStream(deps, body, c.req.raw.signal, format, observe));
  });

  app.openapi(secured(config, { ...generateSync, middleware: [noHead, allowLongWait, unknownQuery] }, 'generate'), async (c) => {
    const { model_name } = c.req.valid('param');
    const body = toGenerateRequest(model_name, c.req.valid('query'));
    return admittedSync(c, deps, model_name, () => answerSync(deps, body, c.req.raw.signal));
  });
}
