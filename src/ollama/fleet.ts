import type { Deadline } from '../config';
import { ApiError } from '../http/errors';
import { resolvedModelName } from '../http/model-name';
import { type RequestRecord, recordOf } from '../observability/request-record';
import { createOllamaClient, type OllamaClient, type UpstreamCall } from './client';

/**
 * Several Ollama instances (OLLAMA_HOSTS: one per GPU or box) behind one Minato. Ollama loads a
 * model on one GPU; a generic balancer cannot tell which instance has the requested model
 * installed, let alone loaded, and one that guesses wrong costs a model load or a 404. Minato
 * sees each request's model, so it keeps, per instance, what is installed (`/api/tags`), what is
 * loaded (`/api/ps`) and whether it answers (`/api/version`), refreshed in the background, on a
 * miss, and after a load or install it caused; and it chooses:
 *
 *   healthy instances with the model installed → those with it loaded first → the fewest
 *   generations in flight from Minato → round-robin.
 *
 * A refused connection, a reset or a 5xx before the first byte reaches the client is retried once
 * on the next candidate, and the instance is marked down until an active check succeeds.
 */

export type InstanceState = 'unknown' | 'up' | 'down';

/** A model as an instance's `/api/tags` or `/api/ps` lists it (the fields Minato reads; the rest are kept). */
export type ListedModel = { name?: string; model?: string } & Record<string, unknown>;

export type Instance = {
  /** `host:port` (and path, if any): the label in metrics, logs, `hosts` and `?host=`. */
  name: string;
  url: string;
  client: OllamaClient;
  state: InstanceState;
  /** Why it is down. */
  reason?: string;
  version?: string;
  /** Installed models by resolved name, as `/api/tags` listed them. */
  installed: Map<string, ListedModel>;
  /** Loaded models by resolved name, as `/api/ps` listed them (or as Minato loaded them since). */
  loaded: Map<string, ListedModel>;
  checkedAt: number;
  /** When Minato last sent it a request (a sequence number): ties go to the least recently used. */
  lastUsed: number;
};

export type Fleet = ReturnType<typeof createFleet>;

/**
 * What identifies a conversation for instance affinity: its messages up to the first user message
 * (the system prompt and the opening question), which every later turn repeats. Only roles and
 * text count.
 */
export function conversationOf(messages: unknown): string | undefined {
  if (!Array.isArray(messages) || messages.length === 0) return undefined;
  const parts: string[] = [];
  for (const message of messages as { role?: unknown; content?: unknown }[]) {
    const content = typeof message?.content === 'string' ? message.content : JSON.stringify(message?.content ?? '');
    parts.push(`${String(message?.role)}:${content}`);
    if (message?.role === 'user') break;
  }
  return parts.join('\n');
}

export const instanceName = (url: string) => {
  const parsed = new URL(url);
  return `${parsed.host}${parsed.pathname === '/' ? '' : parsed.pathname}`;
};

/** A listed model's name (`/api/tags` and `/api/ps` give `name` and `model`). */
export const listedName = (model: ListedModel) => String(model.name ?? model.model ?? '');

/** What an instance rule sees of the request being placed. */
type Choice = {
  /** The model as Ollama resolves it (`llama3.2:latest`). */
  resolved: string;
  /** Generations Minato has running on an instance now. */
  runningOn: (name: string) => number;
  /** The instance a conversation went to before (rendezvous hash of its opening messages), if any. */
  home: Instance | undefined;
};

/**
 * How an instance is chosen among the healthy ones that have the model: each rule scores an
 * instance (lower goes first) and a tie goes to the next rule. A new rule joins this list where
 * its precedence is; tests/ollama/fleet.system.test.ts has a test per rule.
 */
export const INSTANCE_RULES: { name: string; score: (instance: Instance, choice: Choice) => number }[] = [
  // A cold instance would load the model first (seconds to minutes).
  { name: 'model loaded', score: (instance, { resolved }) => (instance.loaded.has(resolved) ? 0 : 1) },
  { name: 'fewest running from Minato', score: (instance, { runningOn }) => runningOn(instance.name) },
  // Among equals, a conversation's turns stay where Ollama has its prompt cached.
  { name: "the conversation's home", score: (instance, { home }) => (instance === home ? 0 : 1) },
  // Otherwise round-robin: the one sent a request least recently.
  { name: 'least recently used', score: (instance) => instance.lastUsed },
];

export type FleetOptions = {
  urls: string[];
  /** Deadline for one check of an instance (MINATO_METADATA_TIMEOUT). */
  checkDeadline: Deadline;
  /** How often a healthy instance is checked (MINATO_FLEET_REFRESH); a down one every second at most. */
  refreshMs: number;
  onWaiting?: (delta: 1 | -1) => void;
  /** Told when an instance changes state, for the log. */
  onStateChange?: (instance: Instance, previous: InstanceState) => void;
};

export function createFleet({ urls, checkDeadline, refreshMs, onWaiting, onStateChange }: FleetOptions) {
  const instances: Instance[] = urls.map((url) => ({
    name: instanceName(url),
    url,
    client: createOllamaClient({ baseUrl: url, onWaiting }),
    state: 'unknown',
    installed: new Map(),
    loaded: new Map(),
    checkedAt: Number.NEGATIVE_INFINITY,
    lastUsed: 0,
  }));
  // Checks use their own clients: they are not requests waiting on Ollama for the metrics.
  const checkers = new Map(instances.map((instance) => [instance, createOllamaClient({ baseUrl: instance.url })]));
  let sent = 0;

  const setState = (instance: Instance, state: InstanceState, reason?: string) => {
    const previous = instance.state;
    instance.state = state;
    instance.reason = reason;
    if (previous !== state) onStateChange?.(instance, previous);
  };

  async function getJson(instance: Instance, path: string): Promise<Record<string, unknown>> {
    const { response } = await checkers.get(instance)!.call(path, undefined, { deadline: checkDeadline });
    if (!response.ok) throw new Error(`${path} answered HTTP ${response.status}`);
    const body = (await response.json().catch(() => undefined)) as Record<string, unknown> | undefined;
    if (!body || typeof body !== 'object') throw new Error(`${path} did not answer JSON`);
    return body;
  }
  const byResolvedName = (list: unknown) =>
    new Map(
      (Array.isArray(list) ? (list as ListedModel[]) : [])
        .filter((model) => listedName(model) !== '')
        .map((model) => [resolvedModelName(listedName(model)), model]),
    );

  /** Sets what the instance has installed from a `/api/tags` answer (the check's, or a listing's). */
  const noteInstalled = (instance: Instance, models: unknown) => {
    instance.installed = byResolvedName(models);
  };

  /** One active check: version, installed and loaded models. */
  const checking = new Map<Instance, Promise<void>>();
  function check(instance: Instance): Promise<void> {
    const running = checking.get(instance);
    if (running) return running;
    const done = (async () => {
      try {
        const [version, tags, ps] = await Promise.all([
          getJson(instance, '/api/version'),
          getJson(instance, '/api/tags'),
          getJson(instance, '/api/ps'),
        ]);
        instance.version = typeof version.version === 'string' ? version.version : undefined;
        noteInstalled(instance, tags.models);
        instance.loaded = byResolvedName(ps.models);
        setState(instance, 'up');
      } catch (error) {
        setState(instance, 'down', (error as Error).message);
      } finally {
        instance.checkedAt = performance.now();
        checking.delete(instance);
      }
    })();
    checking.set(instance, done);
    return done;
  }

  /** Checks every instance (or the ones given), waiting at most the metadata deadline. */
  async function refresh(which: Instance[] = instances): Promise<void> {
    await Promise.race([Promise.all(which.map(check)), Bun.sleep(checkDeadline.ms + 250)]);
  }

  let timer: ReturnType<typeof setInterval> | undefined;
  const tick = () => {
    const now = performance.now();
    for (const instance of instances) {
      const due = instance.state === 'down' ? Math.min(1000, refreshMs) : refreshMs;
      if (now - instance.checkedAt >= due) void check(instance);
    }
  };

  const healthy = () => instances.filter((instance) => instance.state !== 'down');

  const noneAnswers = (tried: Instance[]) =>
    new ApiError(
      502,
      `No Ollama instance answers (${tried.map((instance) => `${instance.url}: ${instance.reason ?? 'not checked yet'}`).join('; ')}). Check that Ollama is running on them and that OLLAMA_HOSTS lists their addresses.`,
      'upstream_unreachable',
    );

  /**
   * Healthy instances with `model` installed, best first (`exclude`d ones left out). Among equals
   * a conversation goes back to the instance it went to before (`conversation`: rendezvous hashing
   * of its opening messages, stable while instances come and go), so that Ollama's prompt cache
   * is reused; otherwise the one Minato sent a request to least recently goes first (round-robin).
   */
  function ranked(model: string, runningOn: (name: string) => number, exclude: Instance[] = [], conversation?: string): Instance[] {
    const wanted = resolvedModelName(model);
    const having = healthy().filter((instance) => instance.installed.has(wanted) && !exclude.includes(instance));
    let home: Instance | undefined;
    if (conversation !== undefined) {
      let best = -1n;
      for (const instance of having) {
        const score = BigInt(Bun.hash(`${conversation}\u0000${instance.name}`));
        if (score > best) {
          best = score;
          home = instance;
        }
      }
    }
    const choice: Choice = { resolved: wanted, runningOn, home };
    return having
      .map((instance) => ({ instance, scores: INSTANCE_RULES.map((rule) => rule.score(instance, choice)) }))
      .sort((a, b) => {
        for (let i = 0; i < a.scores.length; i++) if (a.scores[i] !== b.scores[i]) return a.scores[i]! - b.scores[i]!;
        return 0;
      })
      .map((entry) => entry.instance);
  }

  /**
   * Where a request for `model` may run, best first. A miss (no healthy instance has it, as far
   * as Minato knows) refreshes every instance first, within the metadata deadline. None has it:
   * 404; none answers: 502 naming each instance and why.
   */
  async function candidates(model: string, runningOn: (name: string) => number = () => 0, conversation?: string): Promise<Instance[]> {
    // Just after start, some instances may not have answered their first check: a choice made on
    // half the picture would send a model where it is not loaded. Those checks are awaited (they
    // are already under way, within the metadata deadline).
    const unchecked = instances.filter((instance) => instance.state === 'unknown');
    if (unchecked.length > 0) await refresh(unchecked);
    let found = ranked(model, runningOn, [], conversation);
    if (found.length === 0) {
      await refresh();
      found = ranked(model, runningOn, [], conversation);
    }
    if (found.length > 0) return found;
    // Installed where nothing answers now: a 503 naming the instance, to retry (never a 404 that
    // sends an operator to pull gigabytes onto another GPU).
    const wanted = resolvedModelName(model);
    const away = instances.filter((instance) => instance.state === 'down' && instance.installed.has(wanted));
    if (away.length > 0) {
      throw new ApiError(
        503,
        `Model '${model}' is on ${away.map((instance) => `${instance.name} (not answering: ${instance.reason ?? 'down'})`).join(', ')}. Retry after the number of seconds in Retry-After, once the instance is back; Minato checks it every second.`,
        'model_unavailable',
        { 'Retry-After': '5' },
      );
    }
    const up = healthy();
    if (up.length === 0) throw noneAnswers(instances);
    const down = instances.filter((instance) => instance.state === 'down');
    throw new ApiError(
      404,
      `Model '${model}' is not installed on any Ollama instance (${up.map((instance) => instance.name).join(', ')}${down.length > 0 ? `; not answering: ${down.map((instance) => instance.name).join(', ')}` : ''}). Install it with POST /install/${model}.`,
      'model_not_found',
    );
  }

  /** Healthy instances, refreshing first when none is known to be. */
  async function answering(): Promise<Instance[]> {
    if (healthy().length === 0 || instances.every((instance) => instance.state === 'unknown')) await refresh();
    const up = healthy();
    if (up.length === 0) throw noneAnswers(instances);
    return up;
  }

  /** An instance by its name or its URL (for `?host=`); a 400 that lists them when there is none. */
  function named(host: string): Instance {
    const wanted = host.replace(/\/+$/, '');
    const found = instances.find((instance) => instance.name === wanted || instance.url === wanted);
    if (found) return found;
    throw new ApiError(
      400,
      `No Ollama instance "${host.slice(0, 200)}"; host is one of ${instances.map((instance) => instance.name).join(', ')}.`,
      'unknown_host',
    );
  }

  /** `?host=` (with several instances): the request goes to that instance only (400 for an unknown one). */
  function pin(record: RequestRecord, host: string | undefined): string | undefined {
    if (host !== undefined) record.pinned = named(host).name;
    return host;
  }

  /** A failure worth one retry elsewhere: the instance refused, reset, or failed with a 5xx before answering. */
  const retriable = (error: unknown) =>
    error instanceof ApiError && (error.code === 'upstream_unreachable' || error.code === 'upstream_dropped');

  /**
   * The client routes use with several instances. A request is sent to the instance its
   * admission slot is on (generations), the one `?host=` named, or else the best candidate for
   * its model (or any healthy instance when it names none), and failed over once.
   */
  const client: OllamaClient = {
    baseUrl: instances[0]!.url,
    async call(path, body, options) {
      const record = recordOf(options.signal);
      const model = options.model ?? record?.model;
      // The admission slot's instance, or the one `?host=` named; else the best for the model.
      const pinned = record?.slot ? record.instance : record?.pinned;
      let instance = pinned !== undefined ? instances.find((each) => each.name === pinned) : undefined;
      instance ??= model !== undefined ? (await candidates(model))[0]! : (await answering())[0]!;
      if (record) record.instance = instance.name;
      const attempt = async (on: Instance): Promise<{ call?: UpstreamCall; error?: unknown }> => {
        on.lastUsed = ++sent;
        try {
          // A body given as a function is built by the instance's client, again for a retry.
          const call = await on.client.call(path, body, options);
          return { call };
        } catch (error) {
          return { error };
        }
      };
      let result = await attempt(instance);
      const failed = result.error !== undefined ? retriable(result.error) : result.call!.response.status >= 500;
      const replayable = !(body instanceof ReadableStream);
      if (failed && replayable && !options.signal?.aborted && record?.pinned === undefined) {
        setState(instance, 'down', result.error ? (result.error as Error).message : `HTTP ${result.call!.response.status} on ${path}`);
        const next = model !== undefined ? ranked(model, () => 0, [instance])[0] : healthy().find((each) => each !== instance);
        if (next) {
          result.call?.response.body?.cancel().catch(() => {});
          record?.slot?.move(next.name);
          if (record) record.instance = next.name;
          instance = next;
          result = await attempt(next);
          if (result.error !== undefined && retriable(result.error)) setState(next, 'down', (result.error as Error).message);
        }
      }
      if (result.error !== undefined) throw result.error;
      const call = result.call!;
      // A generation (it holds an admission slot) that Ollama answered has loaded its model there.
      if (call.response.ok && model !== undefined && record?.slot) {
        const resolved = resolvedModelName(model);
        if (!instance.loaded.has(resolved)) instance.loaded.set(resolved, { name: model });
      }
      return call;
    },
  };

  return {
    instances,
    client,
    candidates,
    answering,
    named,
    pin,
    refresh,
    noteInstalled,
    /** Starts the background checks (and checks every instance now). */
    start() {
      if (timer) return;
      tick();
      timer = setInterval(tick, Math.min(refreshMs, 1000));
      timer.unref?.();
    },
    stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
    },
  };
}
