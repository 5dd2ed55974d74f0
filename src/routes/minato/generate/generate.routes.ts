import { createRoute } from '@hono/zod-openapi';
import { withFacts } from '../../../http/route-facts';
import { jsonError, ModelNameParams, modelNotFound, upstreamErrors, validationError } from '../../../openapi/schemas';
import { GenerateAnswer, GenerationQuery, STREAM_DOCS_NOTE, streamContent } from './generate.schemas';

/** The errors both generation routes declare; `rejected` describes Ollama's 400. */
const generationErrors = (rejected: string) => ({
  400: jsonError(rejected, 'upstream_bad_request', 'Ollama rejected the request: "nomic-embed-text" does not support generate'),
  404: modelNotFound,
  422: validationError,
  ...upstreamErrors,
});

export const generateSync = withFacts(
  createRoute({
    method: 'get',
    path: '/{model_name}',
    operationId: 'answerOnQuery',
    tags: ['Generate'],
    summary: 'Answer a prompt (waits for the whole answer)',
    description:
      'Generates an answer with Ollama and returns it with the final statistics. An empty `message` only loads the model (`done_reason: "load"`).',
    request: { params: ModelNameParams, query: GenerationQuery },
    responses: {
      200: { content: { 'application/json': { schema: GenerateAnswer } }, description: 'The answer.' },
      ...generationErrors('Ollama rejected the request (e.g. the model cannot generate).'),
    },
  }),
  {},
);

export const generateStream = withFacts(
  createRoute({
    method: 'get',
    path: '/stream/{model_name}',
    operationId: 'streamAnswerOnQuery',
    tags: ['Generate'],
    summary: 'Stream an answer as it is generated',
    description:
      'Streams Ollama\'s lines as they are generated. `Accept` picks the format: `application/x-ndjson` (default; Ollama\'s bytes unchanged), `text/event-stream` (one SSE event per line, for `EventSource`) or `text/plain` (bare text deltas, as the original service streamed). Errors before the first byte are JSON with a 4xx/5xx status; after it they travel in-band (an `{"error"}` line, or `event: error`).' +
      STREAM_DOCS_NOTE,
    request: { params: ModelNameParams, query: GenerationQuery },
    responses: {
      200: { content: streamContent, description: 'The answer, streamed.' },
      204: {
        description:
          'An EventSource reconnecting (it sends `Last-Event-ID`) after its stream ended: there is nothing to resume, and 204 tells it to stop instead of generating the answer again.',
      },
      ...generationErrors('Ollama rejected the request.'),
    },
  }),
  {},
);
