import { createRoute } from '@hono/zod-openapi';
import { withFacts } from '../../../http/route-facts';
import { maxVisionBodyBytes } from '../../../uploads/images';
import { GenerateAnswer, GenerationQuery, STREAM_DOCS_NOTE, streamContent } from '../generate/generate.schemas';
import { jsonError, ModelNameParams, modelNotFound, upstreamErrors, validationError } from '../../../openapi/schemas';

/** FastAPI's name for the original's multipart form, kept so generated clients keep their type names. */
export const MULTIPART_BODY_NAME = 'Body_answer_on_multimodal_query_vision__model_name__post';
export const JSON_BODY_NAME = 'VisionImages';

// Plain OpenAPI schemas rather than zod ones: a zod body schema would make zod-openapi parse the
// whole form itself before Minato can enforce its size limits while reading.
export const visionBodySchemas = {
  [MULTIPART_BODY_NAME]: {
    type: 'object' as const,
    required: ['images'],
    properties: {
      images: {
        type: 'array' as const,
        items: { type: 'string' as const, format: 'binary', contentMediaType: 'application/octet-stream' },
        description: 'One or more image files (PNG, JPEG, GIF, WebP or BMP), checked by their bytes.',
      },
    },
  },
  [JSON_BODY_NAME]: {
    type: 'object' as const,
    required: ['images'],
    properties: {
      images: {
        type: 'array' as const,
        minItems: 1,
        items: { type: 'string' as const, description: 'Base64 image bytes (standard or URL-safe), or a `data:image/...;base64,` URL.' },
      },
    },
    example: { images: ['iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=='] },
  },
};

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });

const visionRequest = {
  params: ModelNameParams,
  query: GenerationQuery,
  body: {
    required: true,
    description:
      'The images, as multipart files in the field `images` or as JSON base64 strings. Limits: MINATO_MAX_IMAGES images of at most MINATO_MAX_IMAGE_BYTES each.',
    content: {
      'multipart/form-data': { schema: ref(MULTIPART_BODY_NAME) },
      'application/json': { schema: ref(JSON_BODY_NAME) },
    },
  },
};

const visionErrors = {
  400: jsonError(
    'The model cannot read images (no `vision` capability), or the body is malformed.',
    'model_without_vision',
    'Model \'llama3.2\' cannot read images: Ollama lists its capabilities as [completion, tools], without "vision". Use a vision model (e.g. llava, gemma3, qwen2.5vl).',
  ),
  404: modelNotFound,
  408: jsonError(
    'The upload took longer than MINATO_BODY_TIMEOUT.',
    'body_timeout',
    'The upload took longer than 60 s (MINATO_BODY_TIMEOUT).',
  ),
  413: jsonError(
    'Too many images, an image over the size limit, or a body over the total limit.',
    'image_too_large',
    'images[0] is larger than 20971520 bytes (MINATO_MAX_IMAGE_BYTES).',
  ),
  415: jsonError(
    'The body is neither multipart/form-data nor JSON, or a file is not a PNG, JPEG, GIF, WebP or BMP image.',
    'unsupported_image',
    'images[0] is not a complete PNG, JPEG, GIF, WebP or BMP image header (checked from its bytes, not its declared type).',
  ),
  422: validationError,
  ...upstreamErrors,
};

export const visionSync = withFacts(
  createRoute({
    method: 'post',
    path: '/vision/{model_name}',
    operationId: 'answerOnMultimodalQuery',
    tags: ['Vision'],
    summary: 'Answer a prompt about images (waits for the whole answer)',
    description:
      "Checks with Ollama's `/api/show` that the model has the `vision` capability, then answers. Images are never written to disk.",
    request: visionRequest,
    responses: {
      200: { content: { 'application/json': { schema: GenerateAnswer } }, description: 'The answer.' },
      ...visionErrors,
    },
  }),
  { readsOwnBody: maxVisionBodyBytes },
);

export const visionStream = withFacts(
  createRoute({
    method: 'post',
    path: '/stream/vision/{model_name}',
    operationId: 'streamAnswerOnMultimodalQuery',
    tags: ['Vision'],
    summary: 'Stream an answer about images',
    description: `As \`POST /vision/{model_name}\`, streamed with the same \`Accept\` negotiation as \`GET /stream/{model_name}\`.${STREAM_DOCS_NOTE}`,
    request: visionRequest,
    responses: {
      200: { content: streamContent, description: 'The answer, streamed.' },
      ...visionErrors,
    },
  }),
  { readsOwnBody: maxVisionBodyBytes },
);
