import type { Context } from 'hono';
import { createMiddleware } from 'hono/factory';
import { admittedStream, admittedSync, checkAdmission, checkAdmissionAnyModel } from '../../../admission/admitted';
import { isValidModelName } from '../../../http/model-name';
import type { Deps } from '../../../deps';
import { ApiError } from '../../../http/errors';
import { type AppEnv, createRouter } from '../../../http/router';
import { secured } from '../../../middleware/auth';
import type { CapabilityLookup } from '../../../ollama/capabilities';
import { type ChatBody, chatStream, chatSync } from '../../../ollama/chat';
import { conversationOf } from '../../../ollama/fleet';
import { negotiateStreamFormat } from '../../../streaming/ndjson';
import { checkedBase64Image } from '../../../uploads/images';
import { chatStreamRoute, chatSyncRoute } from './chat.routes';
import { OPTION_KEYS } from '../generate/generate.schemas';
import type { ChatRequest } from './chat.schemas';

/**
 * Ollama's `/api/chat` body from Minato's: messages (their images checked and in the standard
 * base64 Ollama requires), tools, format, think and keep_alive as they are, and the generation
 * parameters moved into `options`. A field the client left out is not sent.
 */
function toChatBody(model: string, request: ChatRequest, config: Deps['config']): { body: ChatBody; images: number } {
  let images = 0;
  const messages = request.messages.map((message, index) => {
    if (!message.images?.length) return message;
    return {
      ...message,
      images: message.images.map((image, at) => {
        images++;
        if (images > config.maxImages) {
          throw new ApiError(
            413,
            `At most ${config.maxImages} images per request (MINATO_MAX_IMAGES), counting every message.`,
            'too_many_images',
          );
        }
        return checkedBase64Image(image, ['body', 'messages', index, 'images', at], config);
      }),
    };
  });
  const options: Record<string, unknown> = {};
  for (const key of OPTION_KEYS) if (request[key] !== undefined) options[key] = request[key];
  const body: ChatBody = { model, messages };
  if (request.tools !== undefined) body.tools = request.tools;
  if (request.format !== undefined) body.format = request.format;
  if (request.think !== undefined) body.think = request.think;
  if (request.keep_alive !== undefined) body.keep_alive = request.keep_alive;
  if (Object.keys(options).length > 0) body.options = options;
  return { body, images };
}

/**
 * `POST /chat/{model_name}` and `POST /stream/chat/{model_name}`: conversations on Ollama's
 * `/api/chat`, with everything the other generation routes have (key, rate limit, admission
 * queue, deadlines, cancellation, in-band errors, the log line, metrics). Chained, so that the
 * app's type carries their request and answer types for `hc<AppType>()`.
 */
export function chatRoutes(deps: Deps, capabilitiesOf: CapabilityLookup) {
  const { config } = deps;

  /** The Ollama body, after refusing images for a model that cannot see (before any slot or generation). */
  const prepare = async (c: Context<AppEnv>, model: string, request: ChatRequest) => {
    const { body, images } = toChatBody(model, request, config);
    if (images > 0) {
      const capabilities = await capabilitiesOf(model, c.req.raw.signal);
      if (!capabilities.includes('vision')) {
        throw new ApiError(
          400,
          `Model '${model}' cannot read images: Ollama lists its capabilities as [${capabilities.join(', ')}], without "vision". Use a vision model (e.g. llava, gemma3, qwen2.5vl), or send the messages without images.`,
          'model_without_vision',
        );
      }
    }
    return body;
  };

  /** Refuses (503) a conversation the queue could not take now, before its body (up to 32 MiB) is read. */
  const admitBeforeBody = createMiddleware<AppEnv>(async (c, next) => {
    const model = c.req.param('model_name');
    if (model !== undefined && isValidModelName(model)) await checkAdmission(c, deps, model);
    else checkAdmissionAnyModel(c, deps);
    await next();
  });

  return createRouter()
    .openapi(secured(config, { ...chatSyncRoute, middleware: [admitBeforeBody] }, 'generate'), async (c) => {
      const { model_name } = c.req.valid('param');
      const body = await prepare(c, model_name, c.req.valid('json'));
      if (deps.fleet) c.var.record.conversation = conversationOf(body.messages);
      return admittedSync(c, deps, model_name, () => chatSync(deps, body, c.req.raw.signal));
    })
    .openapi(secured(config, { ...chatStreamRoute, middleware: [admitBeforeBody] }, 'generate'), async (c) => {
      const { model_name } = c.req.valid('param');
      const body = await prepare(c, model_name, c.req.valid('json'));
      if (deps.fleet) c.var.record.conversation = conversationOf(body.messages);
      const format = negotiateStreamFormat(c.req.header('accept'));
      return admittedStream(c, deps, model_name, format, (observe) => chatStream(deps, body, c.req.raw.signal, format, observe));
    });
}
