import { createRoute } from '@hono/zod-openapi';
import type { Config } from '../../../config';
import { withFacts } from '../../../http/route-facts';
import { jsonError, ModelNameParams, modelNotFound, upstreamErrors, validationError } from '../../../openapi/schemas';
import { streamContent, streamDocsNote } from '../generate/generate.schemas';
import { CHAT_REQUEST_EXAMPLE, ChatAnswer, ChatRequest } from './chat.schemas';

/** Chat bodies carry whole conversations with their images: they have their own limit. */
const chatFacts = { bodyLimit: (config: Config) => config.maxChatBodyBytes, parsesBody: true };

const chatBody = {
  required: true,
  description:
    'The conversation and options. Only `messages` is required; a field left out is not sent to Ollama. The body is at most MINATO_MAX_CHAT_BODY_BYTES.',
  content: { 'application/json': { schema: ChatRequest, example: CHAT_REQUEST_EXAMPLE } },
};

const chatErrors = {
  400: jsonError(
    'A capability the model lacks (`tools`, `thinking`, or `vision` for images), or Ollama rejected the request.',
    'model_lacks_capability',
    'Model \'llama3.2\' does not support thinking (Ollama said: "llama3.2" does not support thinking). Use a model that lists "thinking" among its capabilities, or leave that part of the request out.',
  ),
  404: modelNotFound,
  413: jsonError(
    'The body is over MINATO_MAX_CHAT_BODY_BYTES, too many images, or an image over MINATO_MAX_IMAGE_BYTES.',
    'body_too_large',
    'The body is 40000000 bytes; this route takes at most 33554432.',
  ),
  415: jsonError(
    'The body is not JSON, or an image is not a PNG, JPEG, GIF, WebP or BMP.',
    'unsupported_media_type',
    'Send the conversation as application/json: {"messages": [{"role": "user", "content": "Hi"}]}.',
  ),
  422: validationError,
  ...upstreamErrors,
};

export const chatSyncRoute = withFacts(
  createRoute({
    method: 'post',
    path: '/chat/{model_name}',
    operationId: 'chat',
    tags: ['Chat'],
    summary: 'Continue a conversation (waits for the whole answer)',
    description:
      "Sends the conversation to Ollama's `/api/chat` and answers with the assistant's message (its text also as `response`), its thinking and tool calls when there are any, and Ollama's statistics. An empty `messages` list only loads the model.",
    request: { params: ModelNameParams, body: chatBody },
    responses: {
      200: { content: { 'application/json': { schema: ChatAnswer } }, description: "The assistant's answer." },
      ...chatErrors,
    },
  }),
  chatFacts,
);

export const chatStreamRoute = withFacts(
  createRoute({
    method: 'post',
    path: '/stream/chat/{model_name}',
    operationId: 'streamChat',
    tags: ['Chat'],
    summary: 'Continue a conversation, streamed',
    description: `As \`POST /chat/{model_name}\`, streamed with the same \`Accept\` negotiation as \`GET /stream/{model_name}\`: Ollama's NDJSON chat lines (bytes unchanged), SSE, or bare text.${streamDocsNote(`curl -N -H 'Content-Type: application/json' -d '{"messages":[{"role":"user","content":"Hi"}]}' http://127.0.0.1:8000/stream/chat/llama3.2`)}`,
    request: { params: ModelNameParams, body: chatBody },
    responses: {
      200: { content: streamContent, description: 'The answer, streamed.' },
      ...chatErrors,
    },
  }),
  chatFacts,
);
