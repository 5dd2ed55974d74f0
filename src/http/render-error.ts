import type { ApiError } from './errors';

/**
 * The three API dialects Minato speaks, each with its own error shape: Minato's own routes answer
 * `{detail, code}` (FastAPI-compatible), the Ollama-native `/api/*` surface `{"error": "..."}`, the
 * OpenAI-compatible `/v1/*` surface `{"error": {message, type, param, code}}`. Global middleware
 * throws ApiError whatever the route; the root error handler renders it for the route's surface
 * (declared with the route's facts).
 */
export type Surface = 'minato' | 'ollama' | 'openai';

/** The surface of a request no route matched, by its path: `/api/*` Ollama's, `/v1/*` OpenAI's. */
export const surfaceOfPath = (path: string): Surface =>
  path === '/api' || path.startsWith('/api/') ? 'ollama' : path === '/v1' || path.startsWith('/v1/') ? 'openai' : 'minato';

/** OpenAI's error `type` for a status, as its SDKs map them. */
const openAiType = (status: number) =>
  status === 401
    ? 'authentication_error'
    : status === 403
      ? 'permission_error'
      : status === 404
        ? 'not_found_error'
        : status === 429
          ? 'rate_limit_error'
          : status >= 500
            ? 'api_error'
            : 'invalid_request_error';

/** A validation error's list as one line, for dialects whose errors are a single message. */
const oneLine = (error: ApiError) =>
  error.validationDetail ? error.validationDetail.map((item) => `${item.loc.join('.')}: ${item.msg}`).join('; ') : error.detail;

/** The JSON body of `error` in `surface`'s dialect. */
export function errorPayload(surface: Surface, error: ApiError): unknown {
  switch (surface) {
    case 'ollama':
      return { error: oneLine(error) };
    case 'openai': {
      const param = error.validationDetail?.[0]?.loc.slice(1).join('.') || null;
      return { error: { message: oneLine(error), type: openAiType(error.statusCode), param, code: error.code } };
    }
    default:
      return { detail: error.validationDetail ?? error.detail, code: error.code };
  }
}
