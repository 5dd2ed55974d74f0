import { createRoute, type RouteConfig, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import type { Deps } from '../../deps';
import { conversationOf } from '../../ollama/fleet';
import { listsOfEvery } from '../../ollama/fleet-ops';
import { withFacts } from '../../http/route-facts';
import type { AppEnv, AppRouter } from '../../http/router';
import type { StreamObserver } from '../../observability/metrics';
import type { Scope } from '../../security/api-keys';
import { STREAM_HEADERS, parseObject } from '../../streaming/ndjson';
import { relaySse } from '../../streaming/sse-relay';
import { admittedRelay, checkedModel, jsonBody, passThrough, refuseBeforeBody, registerRelayed } from '../relayed';
import { scanFields } from '../../http/json-fields';

/**
 * OpenAI-compatible `/v1/*`: Ollama's own `/v1` relayed (Ollama does the translation), behind
 * Minato's keys, queue, deadlines, logs and metrics, so that `new OpenAI({ baseURL:
 * 'http://box:8000/v1' })` and `@ai-sdk/openai-compatible` work through Minato unchanged.
 */
type V1Policy = { method: 'get' | 'post'; path: string; summary: string; scope: Scope | 'any'; generation?: boolean };

const V1_POLICIES: V1Policy[] = [
  { method: 'post', path: '/v1/chat/completions', summary: 'Chat completions (OpenAI-compatible)', scope: 'generate', generation: true },
  { method: 'post', path: '/v1/completions', summary: 'Completions (OpenAI-compatible)', scope: 'generate', generation: true },
  { method: 'post', path: '/v1/embeddings', summary: 'Embeddings (OpenAI-compatible)', scope: 'generate', generation: true },
  { method: 'post', path: '/v1/responses', summary: 'Responses (OpenAI-compatible)', scope: 'generate', generation: true },
  { method: 'get', path: '/v1/models', summary: 'Installed models (OpenAI-compatible)', scope: 'any' },
  { method: 'get', path: '/v1/models/{model}', summary: 'One model (OpenAI-compatible)', scope: 'any' },
];

const OpenAiError = z
  .object({ error: z.object({ message: z.string(), type: z.string(), param: z.string().nullable(), code: z.string().nullable() }) })
  .openapi('OpenAiError');
const openAiError = (description: string) => ({ content: { 'application/json': { schema: OpenAiError } }, description });
const AnyJson = z.record(z.string(), z.unknown());

const routeOf = (policy: V1Policy, deps: Deps): RouteConfig =>
  withFacts(
    createRoute({
      method: policy.method,
      path: policy.path,
      operationId: `openai${policy.path
        .slice(3)
        .replace(/\{model\}/, 'Model')
        .split('/')
        .map((part) => part.replace(/^./, (ch) => ch.toUpperCase()))
        .join('')}`,
      tags: ['OpenAI-compatible API'],
      summary: policy.summary,
      description: `Ollama's \`${policy.method.toUpperCase()} ${policy.path}\`, relayed (streams as Server-Sent Events, event by event, ending with \`data: [DONE]\`), behind Minato's keys${policy.generation ? ', admission queue' : ''} and deadlines. Errors are OpenAI's \`{"error": {message, type, param, code}}\`.`,
      request:
        policy.method === 'post'
          ? {
              body: {
                required: true,
                content: { 'application/json': { schema: { type: 'object' as const, additionalProperties: true } } },
              },
            }
          : policy.path.includes('{model}')
            ? { params: z.object({ model: z.string().openapi({ param: { name: 'model', in: 'path' } }) }) }
            : {},
      middleware: policy.generation ? [refuseBeforeBody(deps)] : [],
      responses: {
        200: {
          content: { 'application/json': { schema: AnyJson }, 'text/event-stream': { schema: z.string() } },
          description: "Ollama's answer.",
        },
        400: openAiError('A body that is not JSON, or an invalid model name.'),
        404: openAiError('The model is not installed.'),
        502: openAiError('Ollama is unreachable or failed.'),
        503: openAiError("Minato's queue is full (with Retry-After), or Ollama is busy."),
        504: openAiError('Ollama sent nothing before the deadline.'),
      },
    }),
    // Bodies carry conversations and images (data: URIs): the chat limit, not the 64 KiB default.
    { surface: 'openai', bodyLimit: (config) => config.maxChatBodyBytes },
  );

/** The fields of a /v1 body Minato reads or sets. */
const V1_FIELDS = ['model', 'stream', 'stream_options', 'messages'];
const USAGE_FIELDS = ['include_usage'];

async function relay(c: Context<AppEnv>, deps: Deps, policy: V1Policy): Promise<Response> {
  const { config, ollama, metrics } = deps;
  const fields = policy.method === 'post' ? await jsonBody(c, V1_FIELDS) : undefined;
  const body = fields?.body;
  let raw = fields?.raw;
  const model = checkedModel(c, body?.get('model'));
  if (deps.fleet && policy.path === '/v1/chat/completions') c.var.record.conversation = conversationOf(body?.get('messages'));
  const streams = body?.get('stream') === true;
  // Tokens are counted for every stream: Ollama is asked for the usage chunk even when the client
  // did not ask, and that chunk is then left out of what the client receives.
  let clientWantsUsage = false;
  if (streams && body && raw) {
    const options = body.get('stream_options');
    const span = body.spans.get('stream_options');
    if (options === undefined || options === null) {
      raw = body.with('stream_options', { include_usage: true });
    } else if (typeof options === 'object' && !Array.isArray(options) && span) {
      // Read as Ollama reads it (case-insensitively), the ambiguous spellings refused.
      clientWantsUsage = scanFields(raw.subarray(span.start, span.end), USAGE_FIELDS, 'stream_options.').get('include_usage') === true;
      if (!clientWantsUsage) raw = body.with('stream_options', { ...options, include_usage: true });
    }
    // Anything else Ollama refuses itself (400), as it would without Minato.
  }
  const startedAt = performance.now();
  const countTokens = (usage: unknown) => {
    const tokens = (usage as { completion_tokens?: unknown } | undefined)?.completion_tokens;
    if (model !== undefined && typeof tokens === 'number')
      metrics?.generation(model, tokens, (performance.now() - startedAt) * 1e6, c.var.record.instance);
  };
  const oneModel = policy.path.includes('{model}') ? (c.req.param('model') ?? '') : undefined;
  const path = oneModel !== undefined ? `/v1/models/${encodeURIComponent(oneModel)}` : policy.path;
  // With several instances: the union of every instance's list.
  if (deps.fleet && path === '/v1/models') return c.json({ object: 'list', data: await modelsEverywhere(deps, c.req.raw.signal) });
  const call = () =>
    ollama.call(path, raw, {
      // One model's details come from an instance that has it.
      model: oneModel !== undefined && oneModel !== '' ? oneModel : undefined,
      method: policy.method === 'get' ? 'GET' : 'POST',
      signal: c.req.raw.signal,
      deadline: policy.generation ? config.firstByte : config.metadata,
    });

  const whole = async () => {
    const { response } = await call();
    const bytes = await response.arrayBuffer();
    if (response.ok && policy.generation) countTokens(parseObject(new TextDecoder().decode(bytes))?.usage);
    c.var.record.bytes = bytes.byteLength;
    return passThrough(response, bytes, 'application/json');
  };

  const stream = async (observe?: () => StreamObserver) => {
    const upstream = await call();
    const { response } = upstream;
    const type = response.headers.get('content-type') ?? '';
    if (!response.ok || !type.startsWith('text/event-stream') || !response.body) {
      return passThrough(response, await response.arrayBuffer(), 'application/json');
    }
    const observer = observe?.();
    const sse = relaySse(response.body, {
      idleTimeoutMs: config.streamIdle.ms,
      idleSetting: config.streamIdle.setting,
      stallTimeoutMs: config.clientStall.ms,
      abortUpstream: upstream.abort,
      onFirstByte: () => observer?.firstByte(),
      // The usage chunk: `"choices": []` with `usage`; no other event is read.
      onEventMentioning: '"usage"',
      onEvent: (data) => {
        const event = parseObject(data);
        if (!event || !Array.isArray(event.choices) || event.choices.length > 0 || !event.usage) return true;
        countTokens(event.usage);
        return clientWantsUsage;
      },
      onCutOff: (cut) => observer?.onCutOff?.(cut),
      onEnd: ({ errorKind, clientAborted, bytes }) => observer?.end({ errorKind, clientAborted, bytes }),
    });
    return new Response(sse, { status: 200, headers: { 'Content-Type': 'text/event-stream; charset=utf-8', ...STREAM_HEADERS } });
  };

  return admittedRelay(c, deps, { model, generation: policy.generation, streams }, stream, whole);
}

/** `GET /v1/models` of every instance that answers, one entry per model id. */
async function modelsEverywhere({ fleet, config }: Deps, signal: AbortSignal): Promise<unknown[]> {
  const merged = new Map<string, unknown>();
  for (const { items } of await listsOfEvery<{ id?: unknown }>(fleet!, config, '/v1/models', 'data', signal)) {
    for (const model of items) if (typeof model.id === 'string' && !merged.has(model.id)) merged.set(model.id, model);
  }
  return [...merged.values()];
}

export function registerOpenAiApi(app: AppRouter, deps: Deps) {
  registerRelayed(app, deps, V1_POLICIES, routeOf, relay);
}
