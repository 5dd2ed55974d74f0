import { createRoute, z } from '@hono/zod-openapi';
import { HostQuery, upstreamErrors } from '../../../openapi/schemas';

export const ModelEntry = z
  .object({
    name: z.string().openapi({ example: 'llama3.2:latest' }),
    size_mb: z.number().openapi({
      description: 'Size on disk in MiB (1 MiB = 1024 × 1024 bytes, as the original computed), two decimals.',
      example: 1925.83,
    }),
    format: z.string().nullable().openapi({ example: 'gguf' }),
    family: z.string().nullable().openapi({ example: 'llama' }),
    parameter_size: z.string().nullable().openapi({ example: '3.2B' }),
    quantization_level: z.string().nullable().openapi({ example: 'Q4_K_M' }),
    modified_at: z.string().nullable().openapi({ example: '2025-05-04T17:37:44.706015396-07:00' }),
    digest: z.string().nullable().openapi({ example: 'a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72' }),
    hosts: z
      .array(z.string())
      .optional()
      .openapi({
        description: 'With several Ollama instances (OLLAMA_HOSTS): the instances that have it installed.',
        example: ['10.0.0.7:11434'],
      }),
  })
  .openapi('ModelEntry');

export const ModelsList = z.object({ models_list: z.array(ModelEntry) }).openapi('ModelsList');

const definition = {
  method: 'get' as const,
  tags: ['Models'],
  summary: 'List the installed models',
  request: { query: HostQuery },
  responses: {
    200: { content: { 'application/json': { schema: ModelsList } }, description: 'The models Ollama has.' },
    ...upstreamErrors,
  },
};

export const modelsList = createRoute({ ...definition, path: '/models_list/', operationId: 'listModels' });
/** The original's clients call it both ways; without the slash it was captured by `GET /{model_name}`. */
// Served, but listed once in the document (and in /docs): the trailing-slash form is the original's.
export const modelsListNoSlash = createRoute({ ...definition, path: '/models_list', operationId: 'listModelsNoSlash', hide: true });
