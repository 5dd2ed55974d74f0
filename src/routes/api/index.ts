import { createRoute, type RouteConfig, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import type { Deps } from '../../deps';
import { ApiError } from '../../http/errors';
import { withFacts } from '../../http/route-facts';
import type { AppEnv, AppRouter } from '../../http/router';
import { secured } from '../../middleware/auth';
import { parseObject } from '../../streaming/ndjson';
import type { JsonFields } from '../../http/json-fields';
import { answerIdle, consumeNdjson, pullIdle, streamResponse } from '../../streaming/relay';
import { conversationOf, type Fleet } from '../../ollama/fleet';
import { listEverywhere, onEvery, pullEverywhere, pullTargets } from '../../ollama/fleet-ops';
import { admittedRelay, checkedModel, jsonBody, passThrough, refuseBeforeBody, registerRelayed } from '../relayed';
import { API_POLICIES, type ApiPolicy } from './policy';

const OllamaError = z.object({ error: z.string() }).openapi('OllamaError');
const ollamaError = (description: string) => ({ content: { 'application/json': { schema: OllamaError } }, description });
const AnyJson = z.record(z.string(), z.unknown());

/** Ollama's own request fields, documented; unknown fields are kept and relayed (clients send extras). */
const ChatBody = z
  .looseObject({
    model: z.string(),
    messages: z.array(z.looseObject({ role: z.string(), content: z.string().optional() })).optional(),
    tools: z.array(AnyJson).optional(),
    format: z.union([z.string(), AnyJson]).optional(),
    options: AnyJson.optional(),
    stream: z.boolean().optional(),
    think: z.union([z.boolean(), z.string()]).optional(),
    keep_alive: z.union([z.number(), z.string()]).optional(),
  })
  .openapi('OllamaChatRequest');
const GenerateBody = z
  .looseObject({
    model: z.string(),
    prompt: z.string().optional(),
    system: z.string().optional(),
    images: z.array(z.string()).optional(),
    format: z.union([z.string(), AnyJson]).optional(),
    options: AnyJson.optional(),
    stream: z.boolean().optional(),
    think: z.union([z.boolean(), z.string()]).optional(),
    keep_alive: z.union([z.number(), z.string()]).optional(),
  })
  .openapi('OllamaGenerateRequest');

const routeOf = (policy: ApiPolicy, deps: Deps): RouteConfig => {
  const schema = policy.path === '/api/chat' ? ChatBody : policy.path === '/api/generate' ? GenerateBody : undefined;
  const body =
    policy.method === 'get'
      ? undefined
      : // Documented as JSON Schema rather than zod: Ollama reads the body as JSON whatever its
        // Content-Type (its own docs use `curl -d`, which sends a form type), and a zod schema would
        // make zod-openapi answer 415 to that. The relay checks the body itself.
        {
          required: true,
          content: {
            'application/json': {
              schema: schema
                ? (z.toJSONSchema(schema, { io: 'input' }) as object)
                : { type: 'object' as const, additionalProperties: true },
            },
          },
        };
  return withFacts(
    createRoute({
      method: policy.method,
      path: policy.path,
      operationId: `ollama${policy.path.slice(5).replace(/^./, (ch) => ch.toUpperCase())}`,
      tags: ['Ollama API'],
      summary: policy.summary,
      description: `Ollama's \`${policy.method.toUpperCase()} ${policy.path}\`, relayed as sent and answered as Ollama answers (streams are Ollama's NDJSON, whatever \`Accept\` says), behind Minato's keys${policy.generation ? ', admission queue' : ''} and deadlines. Minato's own errors are \`{"error": "..."}\`, as Ollama's.`,
      request: body ? { body } : {},
      middleware: policy.generation ? [refuseBeforeBody(deps)] : [],
      responses: {
        200: {
          content: { 'application/json': { schema: AnyJson }, 'application/x-ndjson': { schema: AnyJson } },
          description: "Ollama's answer.",
        },
        400: ollamaError('A body that is not JSON, or an invalid model name.'),
        404: ollamaError('The model is not installed.'),
        502: ollamaError('Ollama is unreachable or failed.'),
        503: ollamaError("Minato's queue is full (with Retry-After), or Ollama is busy."),
        504: ollamaError('Ollama sent nothing before the deadline.'),
      },
    }),
    // Bodies carry conversations and images (base64): the chat limit, not the 64 KiB default.
    { surface: 'ollama', bodyLimit: (config) => config.maxChatBodyBytes, longWait: policy.streams === 'progress' },
  );
};

/** The body's model name, from the first of the policy's fields that holds one. */
function modelOf(c: Context<AppEnv>, policy: ApiPolicy, body: JsonFields | undefined): string | undefined {
  for (const field of policy.modelFields ?? []) {
    const model = checkedModel(c, body?.get(field));
    if (model !== undefined) return model;
  }
  return undefined;
}

/** The fields of each policy's body that Minato reads: its model, whether it streams, a chat's messages. */
const FIELDS = new Map(
  API_POLICIES.map((policy) => [policy, [...(policy.modelFields ?? []), 'stream', ...(policy.path === '/api/chat' ? ['messages'] : [])]]),
);

/**
 * Relays one request to Ollama and its answer back: an error status with Ollama's own body as it
 * is; a stream line by line through Minato's relay (deadlines, cancellation, an `{"error"}` line
 * if it breaks, never a silent end); a whole answer as it came.
 */
async function relay(c: Context<AppEnv>, deps: Deps, policy: ApiPolicy): Promise<Response> {
  const { config, ollama, fleet } = deps;
  // With several instances, `?host=` sends the request to one of them.
  const host = fleet?.pin(c.var.record, c.req.query('host'));
  const { raw, body } = policy.method === 'get' ? { raw: undefined, body: undefined } : await jsonBody(c, FIELDS.get(policy)!);
  const model = modelOf(c, policy, body);
  if (fleet && policy.path === '/api/chat') c.var.record.conversation = conversationOf(body?.get('messages'));
  if (fleet && policy.everywhere) return relayEverywhere(c, deps, fleet, policy, { raw, body, host });
  const streams = policy.streams !== undefined && body?.get('stream') !== false;
  const idle = policy.streams === 'progress' ? pullIdle(config) : answerIdle(config);
  const isFinal =
    policy.streams === 'progress'
      ? (line: Record<string, unknown>) => line.status === 'success'
      : (line: Record<string, unknown>) => line.done === true;

  const call = () =>
    ollama.call(policy.path, raw, {
      method: policy.method.toUpperCase() as 'GET' | 'POST' | 'DELETE',
      signal: c.req.raw.signal,
      deadline: policy.generation || policy.streams ? config.firstByte : config.metadata,
    });

  const whole = async () => {
    const { response } = await call();
    const bytes = await response.arrayBuffer();
    // Tokens of a whole generation, from its statistics (streams are counted by the relay).
    if (response.ok && policy.generation && model !== undefined) {
      const answer = parseObject(new TextDecoder().decode(bytes));
      if (answer) deps.metrics?.generation(model, answer.eval_count, answer.eval_duration, c.var.record.instance);
    }
    c.var.record.bytes = bytes.byteLength;
    return passThrough(response, bytes);
  };

  const stream = async (observe?: Parameters<typeof streamResponse>[5]) => {
    const upstream = await call();
    const { response } = upstream;
    const type = response.headers.get('content-type') ?? '';
    // An error, or a single JSON object (a model load), is passed on as Ollama wrote it.
    if (!response.ok || !type.startsWith('application/x-ndjson') || !response.body) {
      return passThrough(response, await response.arrayBuffer(), 'application/json');
    }
    return streamResponse(idle, upstream, response.body, 'ndjson', isFinal, observe);
  };

  return admittedRelay(c, deps, { model, generation: policy.generation, streams }, stream, whole);
}

/** With several instances: the union of the listings, a pull on each, a delete or copy on each. */
async function relayEverywhere(
  c: Context<AppEnv>,
  { config }: Deps,
  fleet: Fleet,
  policy: ApiPolicy,
  { raw, body, host }: { raw?: Uint8Array; body?: JsonFields; host?: string },
): Promise<Response> {
  const signal = c.req.raw.signal;
  if (policy.everywhere === 'list') {
    const only = host === undefined ? undefined : fleet.named(host);
    return c.json({ models: await listEverywhere(fleet, config, policy.path as '/api/tags' | '/api/ps', signal, only) });
  }
  if (policy.everywhere === 'pull') {
    const call = pullEverywhere(
      fleet,
      config,
      await pullTargets(fleet, host),
      (raw && parseObject(new TextDecoder().decode(raw))) || {},
      signal,
    );
    const isFinal = (line: Record<string, unknown>) => line.status === 'success';
    if (body?.get('stream') !== false)
      return streamResponse(pullIdle(config), call, call.response.body!, 'ndjson', isFinal, c.var.observeStream);
    let last: Record<string, unknown> | undefined;
    await consumeNdjson(pullIdle(config), call, signal, 'pull', (line) => {
      last = line;
    });
    if (typeof last?.error === 'string') throw new ApiError(502, last.error, 'upstream_error');
    return c.json({ status: 'success' });
  }
  const { response, bytes } = await onEvery(fleet, config, policy.path, policy.method === 'delete' ? 'DELETE' : 'POST', raw!, signal, host);
  return passThrough(response, bytes);
}

/**
 * Ollama's native API at `/api/*`, so that `new Ollama({ host: 'http://box:8000' })` and the AI SDK's
 * Ollama providers work through Minato unchanged — with its keys, queue, deadlines, logs and metrics.
 */
export function registerOllamaApi(app: AppRouter, deps: Deps) {
  registerRelayed(app, deps, API_POLICIES, routeOf, relay);
  registerBlobs(app, deps);
  return app;
}

const DigestParams = z.object({
  digest: z
    .string()
    .regex(/^sha256[:-][0-9a-f]{64}$/, 'a blob digest is sha256:<64 hex digits>')
    .openapi({ param: { name: 'digest', in: 'path' }, example: 'sha256:29fdb92e57cf0827ded04ae6461b5931d01fa595843f55d36f5b275a52087dd2' }),
});

/**
 * `HEAD /api/blobs/{digest}` and `POST /api/blobs/{digest}` (admin): model files for
 * `/api/create`. The upload streams through to Ollama as it arrives, counted against
 * MINATO_MAX_BLOB_BYTES; nothing is held in memory.
 */
function registerBlobs(app: AppRouter, { config, ollama, fleet }: Deps) {
  const common = {
    path: '/api/blobs/{digest}',
    tags: ['Ollama API'],
    request: { params: DigestParams },
    responses: {
      200: { description: 'Ollama has the blob (HEAD).' },
      201: { description: 'Stored (POST).' },
      400: ollamaError('A digest that does not match the body, or is not one.'),
      404: { description: 'Ollama does not have the blob (HEAD).' },
      413: ollamaError('The blob is larger than MINATO_MAX_BLOB_BYTES.'),
      502: ollamaError('Ollama is unreachable or failed.'),
    },
  };
  const facts = { surface: 'ollama' as const, readsOwnBody: (c: typeof config) => c.maxBlobBytes, longWait: true };
  const headRoute = withFacts(
    // Hono answers HEAD through the GET route (dropping the body): HEAD is declared as GET here.
    createRoute({ ...common, method: 'get', operationId: 'ollamaBlobExists', summary: 'Whether Ollama has a blob (send HEAD)' }),
    facts,
  );
  const postRoute = withFacts(
    createRoute({ ...common, method: 'post', operationId: 'ollamaBlobUpload', summary: 'Upload a blob (streamed through)' }),
    facts,
  );
  const forward = async (c: Context<AppEnv>, method: 'HEAD' | 'POST') => {
    // With several instances a blob goes where `?host=` says (the instance /api/create will run on).
    fleet?.pin(c.var.record, c.req.query('host'));
    const { digest } = c.req.param() as { digest: string };
    let sent = 0;
    const declared = Number(c.req.header('content-length') ?? 0);
    if (declared > config.maxBlobBytes)
      throw new ApiError(
        413,
        `The blob is ${declared} bytes; the limit is ${config.maxBlobBytes} (MINATO_MAX_BLOB_BYTES).`,
        'body_too_large',
      );
    // Counted as it streams through; past the limit the upload is cut. A blob may take hours to
    // send, so MINATO_BODY_TIMEOUT bounds the silence between its chunks, not the whole upload.
    let stalled = false;
    let stallTimer: ReturnType<typeof setTimeout> | undefined;
    let arm = () => {};
    const body =
      method === 'POST' && c.req.raw.body
        ? c.req.raw.body.pipeThrough(
            new TransformStream<Uint8Array, Uint8Array>({
              start(controller) {
                arm = () => {
                  clearTimeout(stallTimer);
                  stallTimer = setTimeout(() => {
                    stalled = true;
                    controller.error(new Error('blob upload stalled (MINATO_BODY_TIMEOUT)'));
                  }, config.bodyUpload.ms);
                };
                arm();
              },
              transform(chunk, controller) {
                arm();
                sent += chunk.length;
                if (sent > config.maxBlobBytes) controller.error(new Error('blob over MINATO_MAX_BLOB_BYTES'));
                else controller.enqueue(chunk);
              },
              flush() {
                clearTimeout(stallTimer);
              },
            }),
          )
        : undefined;
    let response: Response;
    try {
      ({ response } = await ollama.call(
        `/api/blobs/${encodeURIComponent(digest)}`,
        body ?? (method === 'POST' ? new Uint8Array(0) : undefined),
        {
          method,
          signal: c.req.raw.signal,
          deadline: config.firstByte,
        },
      ));
    } catch (error) {
      if (stalled) {
        throw new ApiError(
          408,
          `The blob upload sent nothing for ${config.bodyUpload.ms / 1000} s (MINATO_BODY_TIMEOUT); it was stopped. Send it again.`,
          'body_timeout',
          { Connection: 'close' },
        );
      }
      throw error;
    } finally {
      clearTimeout(stallTimer);
    }
    const bytes = await response.arrayBuffer();
    return new Response(bytes.byteLength ? bytes : null, {
      status: response.status,
      headers: { 'Content-Type': response.headers.get('content-type') ?? 'application/json' },
    });
  };
  app.openapi(secured(config, headRoute, 'admin'), ((c: Context<AppEnv>) => forward(c, 'HEAD')) as never);
  app.openapi(secured(config, postRoute, 'admin'), ((c: Context<AppEnv>) => forward(c, 'POST')) as never);
}
