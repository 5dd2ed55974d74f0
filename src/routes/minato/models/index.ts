import { ApiError } from '../../../http/errors';
import { secured } from '../../../middleware/auth';
import { createRouter } from '../../../http/router';
import { upstreamError } from '../../../ollama/client';
import type { Deps } from '../../../deps';
import { modelsList, modelsListNoSlash } from './models.routes';
import { listEverywhere } from '../../../ollama/fleet-ops';

type OllamaModel = {
  name?: string;
  model?: string;
  size?: number;
  digest?: string;
  modified_at?: string;
  details?: { format?: string; family?: string; parameter_size?: string; quantization_level?: string };
};

const MIB = 1024 * 1024;

/** `GET /models_list/` (and without the slash), chained so that the app's type carries them for `hc<AppType>()`. */
export function modelsRoutes({ config, ollama, fleet }: Deps) {
  const installed = async (signal: AbortSignal, host: string | undefined): Promise<(OllamaModel & { hosts?: string[] })[]> => {
    // With several instances: the union, each model with the instances that have it (or one, `?host=`).
    if (fleet) return listEverywhere(fleet, config, '/api/tags', signal, host === undefined ? undefined : fleet.named(host));
    const { response } = await ollama.call('/api/tags', undefined, {
      signal,
      deadline: config.metadata,
    });
    if (!response.ok) throw await upstreamError(response);
    const body = (await response.json().catch(() => undefined)) as { models?: OllamaModel[] } | undefined;
    if (!Array.isArray(body?.models)) throw new ApiError(502, 'Ollama answered /api/tags without a model list.', 'upstream_error');
    return body.models;
  };
  const handler = async (signal: AbortSignal, host: string | undefined) => {
    const models = await installed(signal, host);
    return {
      models_list: models.map((model) => ({
        name: model.name ?? model.model ?? '',
        size_mb: Math.round(((model.size ?? 0) / MIB) * 100) / 100,
        format: model.details?.format ?? null,
        family: model.details?.family ?? null,
        parameter_size: model.details?.parameter_size ?? null,
        quantization_level: model.details?.quantization_level ?? null,
        modified_at: model.modified_at ?? null,
        digest: model.digest ?? null,
        ...(model.hosts && { hosts: model.hosts }),
      })),
    };
  };
  return createRouter()
    .openapi(secured(config, modelsList, 'generate'), async (c) => c.json(await handler(c.req.raw.signal, c.req.valid('query').host), 200))
    .openapi(secured(config, modelsListNoSlash, 'generate'), async (c) =>
      c.json(await handler(c.req.raw.signal, c.req.valid('query').host), 200),
    );
}
