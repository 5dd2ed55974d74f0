import type { Deps } from '../../ollama/generate';
import { answerStream, answerSync } from '../../ollama/generate';
import { isEventSourceReconnect, negotiateStreamFormat } from '../../lib/ndjson';
import { allowLongWait } from '../../lib/long-wait';
import type { AppRouter } from '../../lib/router';
import { toGenerateRequest } from './generate.schemas';
import { generateStream, generateSync } from './generate.routes';

export function registerGenerateRoutes(app: AppRouter, deps: Deps) {
  app.openapi({ ...generateStream, middleware: [allowLongWait] }, async (c) => {
    const { model_name } = c.req.valid('param');
    const format = negotiateStreamFormat(c.req.header('accept'));
    if (format === 'sse' && isEventSourceReconnect(c.req)) return c.body(null, 204);
    const body = toGenerateRequest(model_name, c.req.valid('query'));
    return answerStream(deps, body, c.req.raw.signal, format, c.var.observeStream) as never;
  });

  app.openapi({ ...generateSync, middleware: [allowLongWait] }, async (c) => {
    const { model_name } = c.req.valid('param');
    const body = toGenerateRequest(model_name, c.req.valid('query'));
    return c.json((await answerSync(deps, body, c.req.raw.signal)) as never, 200);
  });
}
