import type { Config } from '../config';
import { ApiError } from '../http/errors';
import { consumeNdjson, pullIdle } from '../streaming/relay';
import { type UpstreamCall, upstreamError } from './client';
import { type Fleet, type Instance, type ListedModel, listedName } from './fleet';

/**
 * What concerns every Ollama instance rather than one: listings are the union (each model says
 * where it is, `hosts`), a pull runs on every healthy instance with progress lines saying which,
 * a delete or copy on every instance that can take it.
 */

const encoder = new TextEncoder();
const metadata = (config: Config, signal?: AbortSignal) => ({
  signal,
  deadline: config.metadata,
});

export type ListedEverywhere = (ListedModel & { hosts: string[] })[];

/**
 * A list every instance that answers keeps under `field` of its answer to `GET path` (`models` of
 * `/api/tags`, `data` of `/v1/models`), with the instance that sent each (or only `only`'s).
 * An instance that fails is left out; 502 naming each instance and why when none answers.
 */
export async function listsOfEvery<T>(
  fleet: Fleet,
  config: Config,
  path: string,
  field: string,
  signal?: AbortSignal,
  only?: Instance,
): Promise<{ instance: Instance; items: T[] }[]> {
  const asked = only ? [only] : await fleet.answering();
  const answers = await Promise.all(
    asked.map(async (instance) => {
      try {
        const { response } = await instance.client.call(path, undefined, metadata(config, signal));
        if (!response.ok) throw await upstreamError(response);
        const body = (await response.json().catch(() => undefined)) as Record<string, unknown> | undefined;
        const items = body?.[field];
        if (!Array.isArray(items)) throw new Error(`answered ${path} without a list`);
        return { instance, items: items as T[] };
      } catch (error) {
        if (signal?.aborted) throw error;
        return { instance, problem: error instanceof ApiError ? error.detail : (error as Error).message };
      }
    }),
  );
  const answered = answers.flatMap((answer) => (answer.items ? [{ instance: answer.instance, items: answer.items }] : []));
  if (answered.length === 0) {
    throw new ApiError(
      502,
      `No Ollama instance answered ${path} (${answers.map((answer) => `${answer.instance.url}: ${answer.problem}`).join('; ')}). Check that Ollama runs on the instances in OLLAMA_HOSTS.`,
      'upstream_unreachable',
    );
  }
  return answered;
}

/**
 * `/api/tags` or `/api/ps` of every instance that answers, merged by name, each model with the
 * instances that list it (in OLLAMA_HOSTS order). 502 naming each instance when none answers.
 */
export async function listEverywhere(
  fleet: Fleet,
  config: Config,
  path: '/api/tags' | '/api/ps',
  signal?: AbortSignal,
  only?: Instance,
): Promise<ListedEverywhere> {
  const answers = await listsOfEvery<ListedModel>(fleet, config, path, 'models', signal, only);
  const merged = new Map<string, ListedModel & { hosts: string[] }>();
  for (const { instance, items } of answers) {
    if (path === '/api/tags') fleet.noteInstalled(instance, items);
    for (const model of items) {
      const name = listedName(model);
      const entry = merged.get(name);
      if (entry) entry.hosts.push(instance.name);
      else merged.set(name, { ...model, hosts: [instance.name] });
    }
  }
  return [...merged.values()];
}

/** The instances a pull goes to: the one `host` names, else every healthy one. */
export async function pullTargets(fleet: Fleet, host: string | undefined): Promise<Instance[]> {
  return host === undefined ? fleet.answering() : [fleet.named(host)];
}

/**
 * `/api/pull` on each of `targets` at once, as one NDJSON progress stream: each instance's lines
 * with `"host"` added, then one `{"status":"success"}` when every pull succeeded, or an
 * `{"error"}` line naming the instances that failed. Returned as an upstream call, so the relay
 * and its deadlines treat it as Ollama's own stream; aborting it aborts every pull.
 */
export function pullEverywhere(
  fleet: Fleet,
  config: Config,
  targets: Instance[],
  body: Record<string, unknown>,
  signal: AbortSignal,
): UpstreamCall {
  const controller = new AbortController();
  const abortAll = () => controller.abort();
  signal.addEventListener('abort', abortAll, { once: true });
  const stream = new ReadableStream<Uint8Array>({
    async start(out) {
      const failures: string[] = [];
      await Promise.all(
        targets.map(async (instance) => {
          try {
            const call = await instance.client.call(
              '/api/pull',
              { ...body, stream: true },
              { signal: controller.signal, deadline: config.firstByte },
            );
            if (!call.response.ok) throw await upstreamError(call.response);
            let succeeded = false;
            await consumeNdjson(pullIdle(config), call, controller.signal, `pull on ${instance.name}`, (line) => {
              if (typeof line.error === 'string') throw new ApiError(502, line.error, 'upstream_error');
              if (line.status === 'success') succeeded = true;
              out.enqueue(encoder.encode(`${JSON.stringify({ ...line, host: instance.name })}\n`));
            });
            if (!succeeded) throw new Error('the pull ended without success');
          } catch (error) {
            failures.push(`${instance.name}: ${error instanceof ApiError ? error.detail : (error as Error).message}`);
          } finally {
            // Minato installed something: what the instance has is known again at once.
            void fleet.refresh([instance]);
          }
        }),
      );
      signal.removeEventListener('abort', abortAll);
      if (controller.signal.aborted) return;
      const last = failures.length === 0 ? { status: 'success' } : { error: `pull failed on ${failures.join('; ')}` };
      out.enqueue(encoder.encode(`${JSON.stringify(last)}\n`));
      out.close();
    },
    cancel: abortAll,
  });
  return {
    response: new Response(stream, { status: 200, headers: { 'Content-Type': 'application/x-ndjson' } }),
    abort: abortAll,
  };
}

/**
 * A request that changes models (`/api/delete`, `/api/copy`) sent to every healthy instance (or
 * the one `host` names): Ollama's answer where any instance succeeded, else the first failure.
 */
export async function onEvery(
  fleet: Fleet,
  config: Config,
  path: string,
  method: 'POST' | 'DELETE',
  raw: Uint8Array,
  signal: AbortSignal,
  host: string | undefined,
): Promise<{ response: Response; bytes: ArrayBuffer }> {
  const targets = await pullTargets(fleet, host);
  const settled = await Promise.allSettled(
    targets.map(async (instance) => {
      const { response } = await instance.client.call(path, raw, { ...metadata(config, signal), method });
      return { instance, response, bytes: await response.arrayBuffer() };
    }),
  );
  void fleet.refresh(targets);
  const answers = settled.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
  const succeeded = answers.filter((answer) => answer.response.ok);
  const chosen = succeeded[0] ?? answers[0];
  // Not one instance answered: the first instance's trouble, as a single one's would be.
  if (!chosen) throw (settled[0] as PromiseRejectedResult).reason;
  return { response: chosen.response, bytes: chosen.bytes };
}
