import type { Config } from '../config';
import { ApiError } from '../http/errors';
import { type OllamaClient, upstreamError } from './client';

export type CapabilityLookup = (model: string, signal: AbortSignal) => Promise<string[]>;

/**
 * What a model can do, from Ollama's `/api/show` (`capabilities`: `completion`, `vision`,
 * `tools`, …), cached briefly: the original decided vision support from a hard-coded list of
 * name fragments and so refused every newer vision model.
 */
export function createCapabilityLookup(ollama: OllamaClient, config: Config): CapabilityLookup {
  const cache = new Map<string, { capabilities: string[]; expires: number }>();
  return async (model, signal) => {
    const cached = cache.get(model);
    if (cached && cached.expires > Date.now()) return cached.capabilities;
    const { response } = await ollama.call('/api/show', { model }, { signal, deadline: config.metadata });
    if (!response.ok) throw await upstreamError(response, model);
    const body = (await response.json().catch(() => ({}))) as { capabilities?: unknown };
    if (!Array.isArray(body.capabilities)) {
      throw new ApiError(
        502,
        `Ollama's /api/show did not list capabilities for '${model}'; Ollama may be too old (update it).`,
        'upstream_error',
      );
    }
    const capabilities = body.capabilities.filter((value): value is string => typeof value === 'string');
    if (config.capabilitiesTtlMs > 0) {
      if (cache.size > 1000) cache.clear();
      cache.set(model, { capabilities, expires: Date.now() + config.capabilitiesTtlMs });
    }
    return capabilities;
  };
}
