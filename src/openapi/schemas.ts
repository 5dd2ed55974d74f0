import { z } from '@hono/zod-openapi';
import { isValidModelName, MODEL_NAME_MAX_LENGTH, MODEL_NAME_PATTERN } from '../http/model-name';

/** `{"detail": "..."}`: FastAPI's error shape, which the original service's clients parse. */
export const ErrorSchema = z
  .object({
    detail: z.string().openapi({ description: 'What went wrong and what to do about it.' }),
    code: z.string().openapi({ description: 'Stable machine-readable error code (see the README).' }),
  })
  .openapi('Error');

export const ValidationErrorSchema = z
  .object({
    loc: z.array(z.union([z.string(), z.number().int()])).openapi({ example: ['query', 'temperature'] }),
    msg: z.string().openapi({ example: 'Too big: expected number to be <=1' }),
    type: z.string().openapi({ example: 'too_big' }),
  })
  .openapi('ValidationError');

/** FastAPI's 422 body, kept so that clients of the original parse Minato's validation errors unchanged. */
export const HTTPValidationErrorSchema = z
  .object({
    detail: z.array(ValidationErrorSchema),
    code: z.string().openapi({ example: 'validation_error' }),
  })
  .openapi('HTTPValidationError');

/** An error response with its own example (`code` and `detail`), so that each status shows what it means. */
export const jsonError = (description: string, code: string, detail: string) => ({
  content: { 'application/json': { schema: ErrorSchema, example: { detail, code } } },
  description,
});

/** The 404 of a model Ollama does not have, on every route that names one. */
export const modelNotFound = jsonError(
  'The model is not installed; install it with `POST /install/{model_name}`.',
  'model_not_found',
  "Model 'llama3.2' is not installed in Ollama. Install it with POST /install/llama3.2 (Ollama said: model 'llama3.2' not found)",
);

export const validationError = {
  content: { 'application/json': { schema: HTTPValidationErrorSchema } },
  description: 'A parameter is missing, of the wrong type or out of range.',
};

/** Upstream failures every route that calls Ollama can answer with. */
export const upstreamErrors = {
  502: jsonError(
    'Ollama is unreachable, dropped the connection, refused the request, failed, or something other than Ollama answered at OLLAMA_HOST.',
    'upstream_unreachable',
    'Cannot reach Ollama at http://127.0.0.1:11434 (ECONNREFUSED). Check that Ollama is running and that OLLAMA_HOST points at it.',
  ),
  503: jsonError(
    "Minato's queue for generations is full or the wait passed MINATO_QUEUE_TIMEOUT (`queue_full`, `queue_timeout`), the request bodies in flight fill MINATO_BODY_BUDGET (`body_budget_exhausted`), the model's only Ollama instance is not answering (`model_unavailable`), Minato is shutting down (`shutting_down`), or Ollama's own queue is full (`upstream_busy`); retry after `Retry-After` seconds.",
    'queue_full',
    'Minato is at capacity: 128 requests are already waiting (MINATO_MAX_QUEUE=128). Retry after the number of seconds in Retry-After.',
  ),
  504: jsonError(
    'Ollama sent nothing before the first-byte deadline.',
    'upstream_timeout',
    'Ollama sent no answer within 300 s (MINATO_FIRST_BYTE_TIMEOUT). A model may still be loading, or Ollama is busy with other requests: retry, or raise MINATO_FIRST_BYTE_TIMEOUT.',
  ),
} as const;

/** `?host=`: with several Ollama instances (OLLAMA_HOSTS), one of them by name (`host:port`) or URL. */
export const HostQuery = z.object({
  host: z
    .string()
    .optional()
    .openapi({
      param: { name: 'host', in: 'query' },
      description:
        'With several Ollama instances (OLLAMA_HOSTS): only this one, by its `host:port` (as `hosts` and /ready name it) or its URL. Without it, every healthy instance. Ignored with one instance. Example: `10.0.0.7:11434`.',
    }),
});

export const ModelNameParams = z.object({
  model_name: z
    .string()
    .max(MODEL_NAME_MAX_LENGTH)
    .regex(new RegExp(MODEL_NAME_PATTERN), 'not a model name Ollama accepts ([host/][namespace/]model[:tag])')
    .refine(isValidModelName, 'not a model name Ollama accepts')
    .openapi({
      param: { name: 'model_name', in: 'path' },
      description:
        'An Ollama model name with optional tag, namespace and host: `llama3.2`, `llama3.2:3b`, `library/llama3.2`, `hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M`. Slashes may be sent raw or percent-encoded (`%2F`).',
      example: 'llama3.2',
    }),
});
