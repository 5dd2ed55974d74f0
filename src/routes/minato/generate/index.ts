import type { Deps } from '../../../deps';
import { answerStream, answerSync } from '../../../ollama/generate';
import { isEventSourceReconnect, negotiateStreamFormat } from '../../../streaming/ndjson';
import { createRouter } from '../../../http/router';
import { secured } from '../../../middleware/auth';
import { admittedStream, admittedSync } from '../../../admission/admitted';
import { GENERATION_PARAMS, toGenerateRequest } from './generate.schemas';
import { warnUnknownQuery } from '../../../middleware/unknown-query';
import { generateStream, generateSync } from './generate.routes';

/** Unknown query parameters named in a `Warning`, and HEAD refused (405): it would run a generation. */
const unknownQuery = warnUnknownQuery(GENERATION_PARAMS, { refuseHead: true });

/**
 * `GET /stream/{model_name}` and `GET /{model_name}`, chained so that the app's type carries them
 * for `hc<AppType>()`. Mounted last: `GET /{model_name}` would capture the fixed paths.
 */
export function generateRoutes(deps: Deps) {
  const { config } = deps;
  return createRouter()
    .openapi(secured(config, { ...generateStream, middleware: [unknownQuery] }, 'generate'), async (c) => {
      const { model_name } = c.req.valid('param');
      const format = negotiateStreamFormat(c.req.header('accept'));
      if (format === 'sse' && isEventSourceReconnect(c.req)) return c.body(null, 204);
      const body = toGenerateRequest(model_name, c.req.valid('query'));
      return admittedStream(c, deps, model_name, format, (observe) => answerStream(deps, body, c.req.raw.signal, format, observe));
    })
    .openapi(secured(config, { ...generateSync, middleware: [unknownQuery] }, 'generate'), async (c) => {
      const { model_name } = c.req.valid('param');
      const body = toGenerateRequest(model_name, c.req.valid('query'));
      return admittedSync(c, deps, model_name, () => answerSync(deps, body, c.req.raw.signal));
    });
}
