import type { Context } from 'hono';
import { ApiError } from '../../lib/errors';
import { readImages } from '../../lib/images';
import { allowLongWait } from '../../lib/long-wait';
import { negotiateStreamFormat } from '../../lib/ndjson';
import type { AppEnv, AppRouter } from '../../lib/router';
import type { CapabilityLookup } from '../../ollama/capabilities';
import { answerStream, answerSync, type Deps } from '../../ollama/generate';
import { type GenerationQuery, toGenerateRequest } from '../generate/generate.schemas';
import { visionBodySchemas, visionStream, visionSync } from './vision.routes';

export function registerVisionRoutes(app: AppRouter, deps: Deps, capabilitiesOf: CapabilityLookup) {
  for (const [name, schema] of Object.entries(visionBodySchemas)) app.openAPIRegistry.registerComponent('schemas', name, schema);

  const prepare = async (c: Context<AppEnv>, model: string, query: GenerationQuery) => {
    const capabilities = await capabilitiesOf(model, c.req.raw.signal);
    if (!capabilities.includes('vision')) {
      throw new ApiError(
        400,
        `Model '${model}' cannot read images: Ollama lists its capabilities as [${capabilities.join(', ')}], without "vision". Use a vision model (e.g. llava, gemma3, qwen2.5vl).`,
        'model_without_vision',
      );
    }
    return toGenerateRequest(model, query, await readImages(c.req.raw, deps.config));
  };

  app.openapi({ ...visionStream, middleware: [allowLongWait] }, async (c) => {
    const { model_name } = c.req.valid('param');
    const body = await prepare(c, model_name, c.req.valid('query'));
    return answerStream(deps, body, c.req.raw.signal, negotiateStreamFormat(c.req.header('accept')), c.var.observeStream) as never;
  });

  app.openapi({ ...visionSync, middleware: [allowLongWait] }, async (c) => {
    const { model_name } = c.req.valid('param');
    const body = await prepare(c, model_name, c.req.valid('query'));
    return c.json((await answerSync(deps, body, c.req.raw.signal)) as never, 200);
  });
}
