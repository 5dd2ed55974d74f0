import type { RouteConfig } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { createMiddleware } from 'hono/factory';
import { admittedStream, admittedWhole, checkAdmissionAnyModel } from '../admission/admitted';
import type { Deps } from '../deps';
import { ApiError } from '../http/errors';
import { isValidModelName } from '../http/model-name';
import type { AppEnv, AppRouter } from '../http/router';
import { anyKey, secured } from '../middleware/auth';
import type { StreamObserver } from '../observability/metrics';
import type { Scope } from '../security/api-keys';
import { type JsonFields, scanFields } from '../http/json-fields';

/**
 * What the two relayed surfaces (Ollama's `/api/*`, OpenAI's `/v1/*`) share: a policy row per
 * endpoint registered behind its key requirement, the body read once as bytes and relayed as sent,
 * the model name checked, Ollama's whole answers passed on as they came, and generations admitted
 * through the queue.
 */

/**
 * Refuses a generation the queue could not take whatever its model, before its body is read (the
 * body, which names the model, may be tens of MiB).
 */
export const refuseBeforeBody = (deps: Deps) =>
  createMiddleware<AppEnv>((c, next) => {
    checkAdmissionAnyModel(c, deps);
    return next();
  });

/**
 * The request's JSON object body, as the bytes it came in (what is relayed is what the client
 * sent), with `fields` found as Ollama would read them (a 400 when the body is not one object, or
 * spells one of them ambiguously). The rest is never parsed.
 */
export async function jsonBody(c: Context<AppEnv>, fields: readonly string[]): Promise<{ raw: Uint8Array; body: JsonFields }> {
  const raw = new Uint8Array(await c.req.arrayBuffer());
  return { raw, body: scanFields(raw, fields) };
}

/** A model name from a body, checked like every model name Minato passes on, and noted for the log. */
export function checkedModel(c: Context<AppEnv>, value: unknown): string | undefined {
  if (typeof value !== 'string' || value === '') return undefined;
  if (!isValidModelName(value))
    throw new ApiError(400, `"${value.slice(0, 100)}" is not a model name Ollama accepts.`, 'invalid_model_name');
  c.var.record.model = value;
  return value;
}

/** Ollama's answer as it came: its status, its bytes (none when empty), its content type (or `fallbackType`). */
export function passThrough(response: Response, bytes: ArrayBuffer, fallbackType?: string): Response {
  const type = response.headers.get('content-type') ?? fallbackType;
  return new Response(bytes.byteLength === 0 ? null : bytes, { status: response.status, headers: type ? { 'Content-Type': type } : {} });
}

/** A relayed request, streamed or whole; a generation naming its model goes through the admission queue. */
export function admittedRelay(
  c: Context<AppEnv>,
  deps: Deps,
  { model, generation, streams }: { model: string | undefined; generation?: boolean; streams: boolean },
  stream: (observe?: () => StreamObserver) => Promise<Response>,
  whole: () => Promise<Response>,
): Promise<Response> {
  if (generation && model !== undefined) {
    return streams ? admittedStream(c, deps, model, 'ndjson', stream, { queueEvents: false }) : admittedWhole(c, deps, model, whole);
  }
  return streams ? stream(c.var.observeStream) : whole();
}

/** Registers each policy's route behind its key requirement (`any`: any valid key). */
export function registerRelayed<P extends { scope: Scope | 'any' }>(
  app: AppRouter,
  deps: Deps,
  policies: P[],
  routeOf: (policy: P, deps: Deps) => RouteConfig,
  relay: (c: Context<AppEnv>, deps: Deps, policy: P) => Promise<Response>,
) {
  for (const policy of policies) {
    const route = routeOf(policy, deps);
    const guarded = policy.scope === 'any' ? anyKey(deps.config, route) : secured(deps.config, route, policy.scope);
    // Routes built in a loop from a table: their handler types cannot be inferred per route.
    app.openapi(guarded, ((c: Context<AppEnv>) => relay(c, deps, policy)) as never);
  }
}
