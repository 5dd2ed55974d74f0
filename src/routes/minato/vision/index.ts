import type { Context } from 'hono';
import { ApiError } from '../../../http/errors';
import { ChargedUpload, withinDeadline } from '../../../http/body';
import { readImages } from '../../../uploads/images';
import { negotiateStreamFormat } from '../../../streaming/ndjson';
import { type AppEnv, createRouter } from '../../../http/router';
import type { CapabilityLookup } from '../../../ollama/capabilities';
import { secured } from '../../../middleware/auth';
import type { Deps } from '../../../deps';
import { answerStream, answerSync } from '../../../ollama/generate';
import { admittedStream, admittedSync, checkAdmission } from '../../../admission/admitted';
import { GENERATION_PARAMS, type GenerationQuery, toGenerateRequest } from '../generate/generate.schemas';
import { warnUnknownQuery } from '../../../middleware/unknown-query';
import { visionBodySchemas, visionStream, visionSync } from './vision.routes';

const unknownQuery = warnUnknownQuery(GENERATION_PARAMS);

/** `POST /vision/{model_name}` and `POST /stream/vision/{model_name}`, chained so that the app's type carries them. */
export function visionRoutes(deps: Deps, capabilitiesOf: CapabilityLookup) {
  const router = createRouter();
  for (const [name, schema] of Object.entries(visionBodySchemas)) router.openAPIRegistry.registerComponent('schemas', name, schema);

  const { config } = deps;
  /** Refuses a model that cannot see before anything waits for a slot or reads the upload. */
  const checkVision = async (c: Context<AppEnv>, model: string) => {
    const capabilities = await capabilitiesOf(model, c.req.raw.signal);
    if (!capabilities.includes('vision')) {
      throw new ApiError(
        400,
        `Model '${model}' cannot read images: Ollama lists its capabilities as [${capabilities.join(', ')}], without "vision". Use a vision model (e.g. llava, gemma3, qwen2.5vl).`,
        'model_without_vision',
      );
    }
  };

  /**
   * The upload is read and checked before the request asks for a slot: a slot is held only while
   * Ollama works, never while a slow client sends its images. A request that could neither start
   * nor queue is refused before its upload is read; one that takes longer than
   * MINATO_BODY_TIMEOUT to send it gets a 408.
   */
  const withImages = async <T>(
    c: Context<AppEnv>,
    model: string,
    query: GenerationQuery,
    answer: (request: ReturnType<typeof toGenerateRequest>) => Promise<T>,
  ): Promise<T> => {
    await checkAdmission(c, deps, model);
    // The images are held until Ollama has them: they count against MINATO_BODY_BUDGET until then.
    const upload = new ChargedUpload(c.req.raw, deps.bodyBudget);
    try {
      return await answer(
        toGenerateRequest(model, query, await withinDeadline(readImages(upload.request, config), config.bodyUpload.ms, uploadTimeout)),
      );
    } finally {
      upload.release();
    }
  };

  return router
    .openapi(secured(config, { ...visionStream, middleware: [unknownQuery] }, 'generate'), async (c) => {
      const { model_name } = c.req.valid('param');
      const query = c.req.valid('query');
      await checkVision(c, model_name);
      const format = negotiateStreamFormat(c.req.header('accept'));
      return withImages(c, model_name, query, (request) =>
        admittedStream(c, deps, model_name, format, (observe) => answerStream(deps, request, c.req.raw.signal, format, observe)),
      );
    })
    .openapi(secured(config, { ...visionSync, middleware: [unknownQuery] }, 'generate'), async (c) => {
      const { model_name } = c.req.valid('param');
      const query = c.req.valid('query');
      await checkVision(c, model_name);
      return withImages(c, model_name, query, (request) =>
        admittedSync(c, deps, model_name, () => answerSync(deps, request, c.req.raw.signal)),
      );
    });
}

/** A slow upload must not hold a slot or memory indefinitely. */
const uploadTimeout = (ms: number) =>
  new ApiError(408, `The upload took longer than ${Math.round(ms / 1000)} s (MINATO_BODY_TIMEOUT).`, 'body_timeout', {
    Connection: 'close',
  });
