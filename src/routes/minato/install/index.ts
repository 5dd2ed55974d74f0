import { ApiError } from '../../../http/errors';
import { secured } from '../../../middleware/auth';
import type { StreamFormat } from '../../../streaming/ndjson';
import { createRouter } from '../../../http/router';
import { upstreamError } from '../../../ollama/client';
import type { Deps } from '../../../deps';
import { consumeNdjson, pullIdle, streamResponse } from '../../../streaming/relay';
import { install } from './install.routes';
import { pullEverywhere, pullTargets } from '../../../ollama/fleet-ops';

// Ollama's text when the registry has no such model; its own CLI matches this exact string.
const NOT_IN_REGISTRY = 'file does not exist';

const notInRegistry = (model: string, message: string) =>
  new ApiError(
    404,
    `Model '${model}' does not exist in the registry (Ollama said: ${message}). Check the name and tag.`,
    'model_not_found',
  );

/** Streams progress only when the client asked for a stream explicitly; the default is the original's wait-and-answer. */
function progressFormat(accept: string | undefined): StreamFormat | undefined {
  const value = (accept ?? '').toLowerCase();
  if (value.includes('text/event-stream')) return 'sse';
  if (value.includes('application/x-ndjson')) return 'ndjson';
  return undefined;
}

/** `POST /install/{model_name}`, chained so that the app's type carries it for `hc<AppType>()`. */
export function installRoutes(deps: Deps) {
  return createRouter().openapi(secured(deps.config, install, 'admin'), async (c) => {
    const { model_name: model } = c.req.valid('param');
    c.var.record.model = model;
    const signal = c.req.raw.signal;
    // With several instances: pulled on each healthy one (or the one `?host=` names), as one progress stream.
    const call = deps.fleet
      ? pullEverywhere(deps.fleet, deps.config, await pullTargets(deps.fleet, c.req.valid('query').host), { model }, signal)
      : await deps.ollama.call('/api/pull', { model, stream: true }, { signal, deadline: deps.config.firstByte });
    if (!call.response.ok) {
      const error = await upstreamError(call.response);
      throw error.detail.includes(NOT_IN_REGISTRY) ? notInRegistry(model, error.detail) : error;
    }
    const body = call.response.body ?? (new Response('').body as ReadableStream<Uint8Array>);
    const format = progressFormat(c.req.header('accept'));
    if (format) {
      const isFinal = (line: Record<string, unknown>) => line.status === 'success';
      return streamResponse(pullIdle(deps.config), call, body, format, isFinal, c.var.observeStream);
    }

    let last: Record<string, unknown> | undefined;
    await consumeNdjson(pullIdle(deps.config), call, signal, `pull of '${model}'`, (line) => {
      if (typeof line.error === 'string') {
        if (line.error.includes(NOT_IN_REGISTRY)) throw notInRegistry(model, line.error);
        throw new ApiError(502, `Ollama could not pull '${model}': ${line.error}`, 'upstream_error');
      }
      last = line;
    });
    if (last?.status !== 'success') {
      throw new ApiError(502, `Ollama ended the pull of '${model}' without reporting success. Retry: the pull resumes.`, 'upstream_error');
    }
    return c.json({ status: 'success' as const }, 200);
  });
}
