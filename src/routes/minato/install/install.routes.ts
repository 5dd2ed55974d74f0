import { withFacts } from '../../../http/route-facts';
import { createRoute, z } from '@hono/zod-openapi';
import { HostQuery, jsonError, ModelNameParams, upstreamErrors } from '../../../openapi/schemas';
import { validationError } from '../../../openapi/schemas';

export const InstallResult = z.object({ status: z.literal('success') }).openapi('InstallResult');

export const PullProgress = z
  .object({
    status: z.string().openapi({ example: 'pulling dde5aa3fc5ff' }),
    digest: z.string().optional().openapi({ example: 'sha256:dde5aa3fc5ffc17176b5e8bdc82f587b24b2678c6c66101bf7da77af9f7ccdff' }),
    total: z.number().int().optional().openapi({ example: 2019377376 }),
    completed: z.number().int().optional().openapi({ example: 241970 }),
    error: z.string().optional().openapi({ description: 'Set on an error line, which ends the stream.' }),
    host: z.string().optional().openapi({
      description: 'With several Ollama instances: the instance this line is from (the final line has none).',
      example: '10.0.0.7:11434',
    }),
  })
  .openapi('PullProgress', { description: 'One line of Ollama\'s pull progress; the last is `{"status":"success"}`.' });

export const install = withFacts(
  createRoute({
    method: 'post',
    path: '/install/{model_name}',
    operationId: 'installModel',
    tags: ['Models'],
    summary: 'Install (pull) a model',
    description:
      'Pulls the model into Ollama. By default waits until the pull is done and answers `{"status": "success"}`. With `Accept: application/x-ndjson` or `Accept: text/event-stream`, streams Ollama\'s progress lines (`status`, `digest`, `total`, `completed`) so a client can draw a progress bar. Disconnecting cancels the pull (Ollama resumes it on the next try). With several Ollama instances (OLLAMA_HOSTS) the model is pulled on every healthy instance at once (or on the one `?host=` names): progress lines carry `host`, and success means every pull succeeded.',
    request: { params: ModelNameParams, query: HostQuery },
    responses: {
      200: {
        content: {
          'application/json': { schema: InstallResult },
          'application/x-ndjson': { schema: PullProgress },
          'text/event-stream': { schema: z.string().openapi({ example: 'data: {"status":"pulling manifest"}\n\n' }) },
        },
        description: 'Installed (or, streamed, the progress).',
      },
      400: jsonError('Ollama rejected the model name.', 'upstream_bad_request', 'Ollama rejected the request: invalid model name'),
      404: jsonError(
        'No such model in the registry.',
        'model_not_in_registry',
        "The registry has no model 'llama9'. Check the name at ollama.com/library.",
      ),
      422: validationError,
      ...upstreamErrors,
    },
  }),
  { longWait: true },
);
