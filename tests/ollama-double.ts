/**
 * A test double of Ollama on a real socket, following ../shared/ollama-api.md: NDJSON framing
 * flushed line by line with `application/x-ndjson`, `application/json; charset=utf-8` for single
 * objects, `application/json` for errors before the first byte, Go's JSON escaping, the
 * empty-prompt load answer, `/api/show` capabilities, pull progress, Ollama's exact error texts
 * and status codes, mid-stream error lines, slow first bytes, dropped connections, and 403 for a
 * foreign Host or any Origin. It records every request and whether its client went away.
 */
import type { Server } from 'bun';

export type DoubleModel = {
  name: string;
  capabilities?: string[];
  size?: number;
  family?: string;
  parameterSize?: string;
  quantization?: string;
  /** The answer, token by token. */
  tokens?: string[];
  /** Pause before each token line. */
  tokenDelayMs?: number;
  /** Silence before the status line and first byte (a cold load). */
  firstByteDelayMs?: number;
  /** Write an `{"error"}` line after this many tokens (a runner failure mid-generation). */
  errorAfterTokens?: number;
  /** Drop the connection after this many tokens, with no final line. */
  dropAfterTokens?: number;
  /** Go silent forever after this many tokens. */
  hangAfterTokens?: number;
  /** After this many tokens, write half a line and end the response (a crash mid-write). */
  partialLineAfterTokens?: number;
  /** After this many tokens, write a line that is not JSON (a panic trace, a proxy's page). */
  garbageAfterTokens?: number;
  /** Answer 500 before any byte, as when the runner dies on load. */
  crashOnLoad?: boolean;
  /** Split every line across two writes, as TCP may. */
  splitLines?: boolean;
  thinking?: string[];
  /** Tool calls a chat answer makes when the request offers tools (the model needs the `tools` capability). */
  toolCalls?: { name: string; arguments: Record<string, unknown> }[];
  /** The value a chat answer with `format` (JSON mode or a schema) returns, as JSON text split into tokens. */
  structured?: unknown;
};

export type RecordedRequest = {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: unknown;
  /** The client closed the connection before the response was complete. */
  aborted: boolean;
  /** The response was written to the end. */
  completed: boolean;
  /** Token lines written before the end or the abort. */
  linesWritten: number;
  abortedAt?: number;
};

export type OllamaDouble = {
  url: string;
  port: number;
  models: Map<string, DoubleModel>;
  /**
   * Loaded models (/api/ps), when the double was started with `loaded`: a generation, chat or
   * embedding loads its model, as Ollama's scheduler does. Otherwise /api/ps lists the first model.
   */
  loaded?: Set<string>;
  /** Models the "registry" has for /api/pull, with how many progress ticks to send. */
  registry: Map<string, { layers: number; tickDelayMs?: number }>;
  requests: RecordedRequest[];
  /** When true every inference request gets Ollama's queue-full 503. */
  busy: boolean;
  /** NDJSON streams being written now (generations and pulls), and the most at once since resetPeak. */
  readonly streaming: number;
  readonly peakStreaming: number;
  resetPeak: () => void;
  /** Stops at once, cutting every stream mid-line as a crashed or restarting Ollama does. */
  crash: () => Promise<void>;
  /** HTTP requests Bun's server is still answering: an upstream request Minato left open shows here. */
  readonly pendingRequests: number;
  last: (path?: string) => RecordedRequest | undefined;
  waitFor: (predicate: () => boolean, timeoutMs?: number) => Promise<void>;
  close: () => Promise<void>;
};

const encoder = new TextEncoder();

/** Go's json.Marshal escapes <, > and & inside strings. */
export const goJson = (value: unknown) =>
  JSON.stringify(value).replace(/[<>&]/g, (ch) => `\\u00${ch.charCodeAt(0).toString(16).padStart(2, '0')}`);

/** A small L2-normalized embedding that differs with the input's length, as the double's embed answers. */
const vector = (text: string) => {
  const raw = [text.length + 1, 2, 3, 4];
  const norm = Math.hypot(...raw);
  return raw.map((value) => value / norm);
};

const createdAt = () => new Date().toISOString().replace(/\.(\d+)Z$/, (_, ms: string) => `.${ms}123Z`.replace(/0+Z$/, 'Z'));

const jsonResponse = (status: number, body: unknown, charset = true) =>
  new Response(goJson(body), {
    status,
    headers: { 'Content-Type': charset ? 'application/json; charset=utf-8' : 'application/json' },
  });

// Errors the stream writer emits before any byte carry `application/json` without charset.
const streamError = (status: number, message: string) => jsonResponse(status, { error: message }, false);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const OPTION_TYPES: Record<string, 'int' | 'float' | 'array' | 'bool'> = {
  num_keep: 'int',
  seed: 'int',
  num_predict: 'int',
  top_k: 'int',
  top_p: 'float',
  min_p: 'float',
  typical_p: 'float',
  repeat_last_n: 'int',
  temperature: 'float',
  repeat_penalty: 'float',
  presence_penalty: 'float',
  frequency_penalty: 'float',
  stop: 'array',
  num_ctx: 'int',
  num_batch: 'int',
  num_gpu: 'int',
  main_gpu: 'int',
  use_mmap: 'bool',
  num_thread: 'int',
};

/** api.Options.FromMap: unknown keys are ignored (a server-side warning); wrong types are errors (HTTP 500). */
function checkOptions(options: unknown): string | undefined {
  if (options === undefined || options === null) return undefined;
  for (const [key, value] of Object.entries(options as Record<string, unknown>)) {
    const type = OPTION_TYPES[key];
    if (!type || value === null) continue;
    if ((type === 'int' || type === 'float') && typeof value !== 'number') {
      return `option "${key}" must be of type ${type === 'int' ? 'integer' : 'float32'}`;
    }
    if (type === 'bool' && typeof value !== 'boolean') return `option "${key}" must be of type boolean`;
    if (type === 'array') {
      if (!Array.isArray(value)) return `option "${key}" must be of type array`;
      if (value.some((item) => typeof item !== 'string')) return `option "${key}" must be of an array of strings`;
    }
  }
  return undefined;
}

/** api.Duration.UnmarshalJSON: numbers are seconds; strings are Go durations with units. */
function checkKeepAlive(value: unknown): string | undefined {
  if (value === undefined || value === null || typeof value === 'number') return undefined;
  if (typeof value !== 'string') return `Unsupported type: '${typeof value}'`;
  if (/^[+-]?((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+$/.test(value) || value === '0') return undefined;
  if (/^[+-]?\d+(\.\d+)?$/.test(value)) return `time: missing unit in duration "${value}"`;
  return `time: invalid duration "${value}"`;
}

/** Images are []byte in Go: standard base64 only, so a data: prefix fails at byte 4 or 5. */
function checkImages(images: unknown): string | undefined {
  if (images === undefined || images === null) return undefined;
  if (!Array.isArray(images)) return 'json: cannot unmarshal string into Go struct field GenerateRequest.images of type []api.ImageData';
  for (const image of images) {
    if (typeof image !== 'string') return 'json: cannot unmarshal number into Go struct field GenerateRequest.images of type api.ImageData';
    const bad = image.search(/[^A-Za-z0-9+/=\r\n]/);
    if (bad !== -1) return `illegal base64 data at input byte ${bad}`;
  }
  return undefined;
}

/** The texts of Go's encoding/json for the usual ways a body is malformed. */
function goDecodeError(text: string): string {
  const trimmed = text.trim();
  const first = trimmed[0] ?? '';
  if (!/[{["\d tfn-]/.test(first)) return `invalid character '${first}' looking for beginning of value`;
  if (first === '{') {
    const next = trimmed.slice(1).trim()[0];
    if (next === undefined) return 'unexpected EOF';
    if (next !== '"' && next !== '}') return `invalid character '${next}' looking for beginning of object key string`;
  }
  return 'unexpected EOF';
}

/** Fields of Ollama's request types (api.GenerateRequest, ChatRequest, EmbedRequest, PullRequest, …, and its /v1 ones). */
const GO_FIELDS = [
  'model',
  'name',
  'source',
  'destination',
  'stream',
  'stream_options',
  'include_usage',
  'messages',
  'prompt',
  'suffix',
  'system',
  'format',
  'options',
  'keep_alive',
  'think',
  'images',
  'tools',
  'input',
  'truncate',
];

/**
 * Keys as Go's encoding/json assigns them: a key matches a field case-insensitively (ASCII, plus
 * `ſ` for s and the Kelvin sign for k), and of several the last wins. `{"Model":"x"}` is a model.
 */
function goFields(body: Record<string, unknown>): Record<string, unknown> {
  const fold = (key: string) =>
    key
      .replace(/\u017f/g, 's')
      .replace(/\u212a/g, 'k')
      .replace(/[A-Z]/g, (ch) => ch.toLowerCase());
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(body)) {
    const field = GO_FIELDS.find((name) => name === fold(key)) ?? key;
    out[field] = field === 'stream_options' && value && typeof value === 'object' ? goFields(value as Record<string, unknown>) : value;
  }
  return out;
}

async function readJsonBody(request: Request): Promise<{ body?: Record<string, unknown>; error?: Response }> {
  const text = await request.text();
  if (text === '') return { error: jsonResponse(400, { error: 'missing request body' }) };
  try {
    const body = JSON.parse(text) as unknown;
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      return { error: jsonResponse(400, { error: 'json: cannot unmarshal into Go value of type api.GenerateRequest' }) };
    }
    return { body: goFields(body as Record<string, unknown>) };
  } catch {
    return { error: jsonResponse(400, { error: goDecodeError(text) }) };
  }
}

const isAllowedHost = (host: string | null) => {
  if (!host) return true;
  const name = host.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return (
    name === 'localhost' ||
    name === '127.0.0.1' ||
    name === '::1' ||
    name.endsWith('.localhost') ||
    name.endsWith('.local') ||
    name.endsWith('.internal')
  );
};

/** Bytes written as they are, not as a JSON line. */
class RawBytes {
  constructor(readonly text: string) {}
}

export function startOllamaDouble(
  initial: DoubleModel[] = [],
  { port = 0, loaded: loadedAtStart }: { port?: number; loaded?: string[] } = {},
): OllamaDouble {
  const models = new Map(initial.map((model) => [model.name, model]));
  const loaded = loadedAtStart ? new Set(loadedAtStart) : undefined;
  const load = (model: DoubleModel) => loaded?.add(model.name);
  const registry = new Map<string, { layers: number; tickDelayMs?: number }>();
  const requests: RecordedRequest[] = [];
  const blobs = new Set<string>();
  const state = { busy: false, streaming: 0, peakStreaming: 0 };
  /** Cuts every stream being written, as a crash of the process would. */
  const cutters = new Set<() => void>();

  // As Ollama's model.ParseName: default host, namespace and tag filled in, compared case-insensitively.
  const canonical = (name: string) => {
    const [, host = 'registry.ollama.ai/', namespace = 'library/', model = '', tag = ':latest'] =
      /^([^/]+\/(?=[^/]+\/))?([^/]+\/)?([^/:]+)(:[^/:]+)?$/.exec(name) ?? [];
    return `${host}${namespace}${model}${tag}`.toLowerCase();
  };
  const lookup = (name: string) => {
    const wanted = canonical(name);
    for (const model of models.values()) if (canonical(model.name) === wanted) return model;
    return undefined;
  };

  /** An NDJSON stream written line by line, recording aborts. */
  function ndjsonStream(
    record: RecordedRequest,
    produce: (write: (line: unknown) => Promise<void>, model?: DoubleModel) => Promise<unknown>,
    model?: DoubleModel,
  ) {
    let cancelled = false;
    let counted = true;
    state.streaming++;
    state.peakStreaming = Math.max(state.peakStreaming, state.streaming);
    const uncount = () => {
      if (counted) state.streaming--;
      counted = false;
    };
    // Ollama's writes block while the connection's buffers are full (Go's ResponseWriter):
    // a line waits here until the reader has taken what came before.
    let pulled: (() => void) | undefined;
    const backpressure = async (controller: ReadableStreamDefaultController<Uint8Array>) => {
      while (!cancelled && (controller.desiredSize ?? 1) <= 0) await new Promise<void>((resolve) => (pulled = resolve));
    };
    return new ReadableStream<Uint8Array>({
      pull() {
        pulled?.();
      },
      start(controller) {
        const cut = () => {
          cancelled = true;
          uncount();
          controller.error(new Error('Ollama crashed'));
        };
        cutters.add(cut);
        const write = async (line: unknown) => {
          await backpressure(controller);
          if (cancelled) throw new Error('cancelled');
          const bytes = encoder.encode(line instanceof RawBytes ? line.text : `${goJson(line)}\n`);
          if (model?.splitLines && bytes.length > 2) {
            const middle = Math.floor(bytes.length / 2);
            controller.enqueue(bytes.subarray(0, middle));
            await sleep(5);
            if (cancelled) throw new Error('cancelled');
            controller.enqueue(bytes.subarray(middle));
          } else {
            controller.enqueue(bytes);
          }
        };
        // Not awaited: start() must return for pull() (the reader's demand) to be called.
        (async () => {
          try {
            const outcome = await produce(write, model);
            if (outcome === 'drop') {
              await sleep(50); // let what was written reach the socket first, as a real crash would
              uncount();
              controller.error(new Error('connection dropped by the double'));
              return;
            }
            if (outcome === 'hang') return;
            record.completed = true;
            uncount();
            controller.close();
          } catch {
            // cancelled by the client
          }
          cutters.delete(cut);
        })();
      },
      cancel() {
        cancelled = true;
        pulled?.();
        uncount();
        if (!record.aborted) {
          record.aborted = true;
          record.abortedAt = Date.now();
        }
      },
    });
  }

  /**
   * Writes token lines, with the model's faults at their token (an error line, a drop, silence, a
   * half line, garbage); returns 'drop'/'hang' for the stream to act on, 'ended' when an error or
   * half line ended it, undefined when every token was written.
   */
  async function writeTokens(
    write: (line: unknown) => Promise<void>,
    model: DoubleModel,
    record: RecordedRequest,
    tokens: string[],
    lineOf: (token: string) => Record<string, unknown>,
  ): Promise<'drop' | 'hang' | 'ended' | undefined> {
    for (const [index, token] of tokens.entries()) {
      if (model.errorAfterTokens === index) {
        await write({ error: 'an error was encountered while running the model: unexpected EOF' });
        return 'ended';
      }
      if (model.dropAfterTokens === index) return 'drop';
      if (model.hangAfterTokens === index) return 'hang';
      if (model.partialLineAfterTokens === index) {
        const line = goJson(lineOf(token));
        await write(new RawBytes(line.slice(0, Math.floor(line.length / 2))));
        return 'ended';
      }
      if (model.garbageAfterTokens === index) await write(new RawBytes('panic: runtime error: invalid memory address\n'));
      if (model.tokenDelayMs) await sleep(model.tokenDelayMs);
      await write(lineOf(token));
      record.linesWritten++;
    }
    return undefined;
  }

  /** Ollama's full name for error texts: `registry.ollama.ai/library/x:latest`. */
  const fullName = (name: string) => {
    const parts = name.split('/');
    const last = parts.pop()!;
    const withTag = last.includes(':') ? last : `${last}:latest`;
    return [
      ...(parts.length === 2 ? parts : parts.length === 1 ? ['registry.ollama.ai', ...parts] : ['registry.ollama.ai', 'library']),
      withTag,
    ].join('/');
  };

  /** `POST /api/chat` as ollama-api.md §2 says: messages, tools, format, think, the load answer. */
  async function chat(request: Request, record: RecordedRequest): Promise<Response> {
    const { body, error } = await readJsonBody(request);
    if (error) return error;
    record.body = body;
    const name = typeof body?.model === 'string' ? body.model : '';
    if (name === '') return jsonResponse(400, { error: 'model is required' });
    const model = lookup(name);
    if (!model) return jsonResponse(404, { error: `model '${name}' not found` });
    load(model);
    const messages = body?.messages ?? [];
    if (!Array.isArray(messages))
      return jsonResponse(400, { error: 'json: cannot unmarshal object into Go struct field ChatRequest.messages of type []api.Message' });
    for (const message of messages as { images?: unknown }[]) {
      const badImages = checkImages(message?.images);
      if (badImages) return jsonResponse(400, { error: badImages });
    }
    const badKeepAlive = checkKeepAlive(body?.keep_alive);
    if (badKeepAlive) return jsonResponse(400, { error: badKeepAlive });
    const capabilities = model.capabilities ?? ['completion'];
    const tools = Array.isArray(body?.tools) && body.tools.length > 0;
    if (tools && !capabilities.includes('tools')) return jsonResponse(400, { error: `${fullName(name)} does not support tools` });
    const think = body?.think;
    if (think !== undefined && think !== true && think !== false && !['high', 'medium', 'low', 'max'].includes(String(think))) {
      return jsonResponse(400, {
        error: `invalid think value: "${String(think)}" (must be "high", "medium", "low", "max", true, or false)`,
      });
    }
    if (think !== undefined && think !== false && !capabilities.includes('thinking')) {
      return jsonResponse(400, { error: `"${name}" does not support thinking` });
    }
    const format = body?.format;
    if (
      format !== undefined &&
      format !== null &&
      format !== '' &&
      format !== 'json' &&
      (typeof format !== 'object' || Array.isArray(format))
    ) {
      return jsonResponse(500, { error: `invalid format: ${JSON.stringify(format)}; expected "json" or a valid JSON Schema object` });
    }
    if (state.busy) return jsonResponse(503, { error: 'server busy, please try again.  maximum pending requests exceeded' });
    const badOption = checkOptions(body?.options);
    if (badOption) return jsonResponse(500, { error: badOption });
    if (model.firstByteDelayMs) await sleep(model.firstByteDelayMs);
    if (request.signal.aborted) {
      record.aborted = true;
      record.abortedAt = Date.now();
      return jsonResponse(499, { error: 'request canceled' });
    }
    const message = (content: string, extra: Record<string, unknown> = {}) => ({ role: 'assistant', content, ...extra });
    if (messages.length === 0) {
      record.completed = true;
      const unload = body?.keep_alive === 0 || body?.keep_alive === '0';
      return jsonResponse(200, {
        model: name,
        created_at: createdAt(),
        message: message(''),
        done: true,
        done_reason: unload ? 'unload' : 'load',
      });
    }
    const structured = format !== undefined && format !== null && format !== '';
    const text = structured ? JSON.stringify(model.structured ?? {}) : undefined;
    const tokens =
      text !== undefined
        ? [text.slice(0, Math.ceil(text.length / 2)), text.slice(Math.ceil(text.length / 2))]
        : (model.tokens ?? ['The', ' sky', ' is', ' blue', '.']);
    const thinking = think === false ? [] : (model.thinking ?? []);
    const toolCalls = tools
      ? (model.toolCalls ?? []).map((call, index) => ({
          id: `call_${Math.random().toString(36).slice(2, 10).padEnd(8, '0')}`,
          function: { index, name: call.name, arguments: call.arguments },
        }))
      : [];
    const started = Date.now();
    const final = () => ({
      model: name,
      created_at: createdAt(),
      message: message(''),
      done: true,
      done_reason: 'stop',
      total_duration: (Date.now() - started) * 1e6 + 1,
      load_duration: 1_334_875,
      prompt_eval_count: 26,
      prompt_eval_duration: 342_546_000,
      eval_count: tokens.length,
      eval_duration: Math.max(1, tokens.length * (model.tokenDelayMs ?? 0)) * 1e6,
    });
    // A model that calls tools answers with the calls and no content.
    const content = toolCalls.length > 0 ? [] : tokens;
    if (body?.stream === false) {
      for (const _ of content) await sleep(model.tokenDelayMs ?? 0);
      record.completed = true;
      record.linesWritten = content.length;
      const extra: Record<string, unknown> = {};
      if (thinking.length) extra.thinking = thinking.join('');
      if (toolCalls.length) extra.tool_calls = toolCalls;
      return jsonResponse(200, { ...final(), message: message(content.join(''), extra) });
    }
    const stream = ndjsonStream(
      record,
      async (write) => {
        for (const piece of thinking)
          await write({ model: name, created_at: createdAt(), message: message('', { thinking: piece }), done: false });
        if (toolCalls.length)
          await write({ model: name, created_at: createdAt(), message: message('', { tool_calls: toolCalls }), done: false });
        const outcome = await writeTokens(write, model, record, content, (token) => ({
          model: name,
          created_at: createdAt(),
          message: message(token),
          done: false,
        }));
        if (outcome) return outcome;
        await write(final());
      },
      model,
    );
    return new Response(stream, { status: 200, headers: { 'Content-Type': 'application/x-ndjson' } });
  }

  /** `POST /api/embed` (and the legacy `/api/embeddings`): L2-normalized vectors, as ollama-api.md §7 says. */
  async function embed(request: Request, record: RecordedRequest, legacy: boolean): Promise<Response> {
    const { body, error } = await readJsonBody(request);
    if (error) return error;
    record.body = body;
    const name = typeof body?.model === 'string' ? body.model : '';
    const model = lookup(name);
    if (!model) return jsonResponse(404, { error: `model "${name}" not found, try pulling it first` });
    load(model);
    if (state.busy) return jsonResponse(503, { error: 'server busy, please try again.  maximum pending requests exceeded' });
    record.completed = true;
    if (legacy) return jsonResponse(200, { embedding: vector(String(body?.prompt ?? '')) });
    const input = body?.input;
    if (input !== undefined && typeof input !== 'string' && !(Array.isArray(input) && input.every((item) => typeof item === 'string'))) {
      return jsonResponse(400, { error: 'invalid input type' });
    }
    const inputs = input === undefined || input === '' ? [] : Array.isArray(input) ? input : [input];
    return jsonResponse(200, {
      model: name,
      embeddings: inputs.map(vector),
      total_duration: 14_143_917,
      load_duration: 1_019_500,
      prompt_eval_count: inputs.length * 8,
    });
  }

  /** OpenAI's error shape, as Ollama's /v1 writes it. */
  const openAiError = (status: number, message: string, type = 'invalid_request_error') =>
    jsonResponse(status, { error: { message, type, param: null, code: null } });

  /**
   * Ollama's own `/v1/chat/completions` framing (clients.md): `data: {json}` events, content chunks,
   * each tool call whole in one chunk (arguments a JSON string), a finish chunk with an empty
   * delta, a usage chunk (`choices: []`) only with `stream_options.include_usage`, then `[DONE]`.
   */
  async function chatCompletions(request: Request, record: RecordedRequest): Promise<Response> {
    const { body, error } = await readJsonBody(request);
    if (error) return error;
    record.body = body;
    const name = typeof body?.model === 'string' ? body.model : '';
    const model = lookup(name);
    if (!model) return openAiError(404, `model "${name}" not found, try pulling it first`, 'not_found_error');
    load(model);
    if (state.busy) return openAiError(503, 'server busy, please try again.  maximum pending requests exceeded', 'api_error');
    const tools = Array.isArray(body?.tools) && body.tools.length > 0;
    const calls = tools ? (model.toolCalls ?? []) : [];
    const tokens = calls.length
      ? []
      : body?.response_format
        ? [JSON.stringify(model.structured ?? {})]
        : (model.tokens ?? ['The', ' sky', ' is', ' blue', '.']);
    const id = `chatcmpl-${Math.floor(Math.random() * 1000)}`;
    const created = Math.floor(Date.now() / 1000);
    const usage = { prompt_tokens: 26, completion_tokens: tokens.length || 1, total_tokens: 26 + (tokens.length || 1) };
    const toolCalls = calls.map((call, index) => ({
      id: `call_${Math.random().toString(36).slice(2, 10).padEnd(8, '0')}`,
      index,
      type: 'function',
      function: { name: call.name, arguments: JSON.stringify(call.arguments) },
    }));
    const finish = calls.length ? 'tool_calls' : 'stop';
    if (body?.stream !== true) {
      record.completed = true;
      return jsonResponse(200, {
        id,
        object: 'chat.completion',
        created,
        model: name,
        system_fingerprint: 'fp_ollama',
        choices: [
          {
            index: 0,
            message: { role: 'assistant', content: tokens.join(''), ...(toolCalls.length && { tool_calls: toolCalls }) },
            finish_reason: finish,
          },
        ],
        usage,
      });
    }
    const includeUsage = (body?.stream_options as { include_usage?: boolean } | undefined)?.include_usage === true;
    const chunk = (delta: Record<string, unknown>, finishReason: string | null = null) => ({
      id,
      object: 'chat.completion.chunk',
      created,
      model: name,
      system_fingerprint: 'fp_ollama',
      choices: [{ index: 0, delta, finish_reason: finishReason }],
    });
    const encoder = new TextEncoder();
    let cancelled = false;
    state.streaming++;
    state.peakStreaming = Math.max(state.peakStreaming, state.streaming);
    let counted = true;
    const uncount = () => {
      if (counted) state.streaming--;
      counted = false;
    };
    const stream = new ReadableStream<Uint8Array>({
      async start(controller) {
        const send = (data: unknown) => controller.enqueue(encoder.encode(`data: ${typeof data === 'string' ? data : goJson(data)}\n\n`));
        try {
          for (const [index, token] of tokens.entries()) {
            if (cancelled) return;
            if (model.tokenDelayMs) await sleep(model.tokenDelayMs);
            if (cancelled) return;
            if (model.dropAfterTokens === index) {
              uncount();
              controller.error(new Error('connection dropped by the double'));
              return;
            }
            send(chunk({ role: 'assistant', content: token }));
            record.linesWritten++;
          }
          for (const call of toolCalls) send(chunk({ role: 'assistant', content: '', tool_calls: [call] }));
          send(chunk({}, finish));
          if (includeUsage)
            send({ id, object: 'chat.completion.chunk', created, model: name, system_fingerprint: 'fp_ollama', choices: [], usage });
          send('[DONE]');
          record.completed = true;
          uncount();
          controller.close();
        } catch {
          // cancelled
        }
      },
      cancel() {
        cancelled = true;
        uncount();
        if (!record.aborted) {
          record.aborted = true;
          record.abortedAt = Date.now();
        }
      },
    });
    return new Response(stream, { status: 200, headers: { 'Content-Type': 'text/event-stream' } });
  }

  /** `/v1/embeddings`: floats, or little-endian float32 base64 with `encoding_format: "base64"`. */
  async function openAiEmbeddings(request: Request, record: RecordedRequest): Promise<Response> {
    const { body, error } = await readJsonBody(request);
    if (error) return error;
    record.body = body;
    const name = typeof body?.model === 'string' ? body.model : '';
    if (!lookup(name)) return openAiError(404, `model "${name}" not found, try pulling it first`, 'not_found_error');
    const inputs = Array.isArray(body?.input) ? (body.input as string[]) : [String(body?.input ?? '')];
    const base64 = body?.encoding_format === 'base64';
    record.completed = true;
    return jsonResponse(200, {
      object: 'list',
      data: inputs.map((input, index) => ({
        object: 'embedding',
        embedding: base64 ? Buffer.from(new Float32Array(vector(input)).buffer).toString('base64') : vector(input),
        index,
      })),
      model: name,
      usage: { prompt_tokens: inputs.length * 8, total_tokens: inputs.length * 8 },
    });
  }

  async function generate(request: Request, record: RecordedRequest): Promise<Response> {
    const { body, error } = await readJsonBody(request);
    if (error) return error;
    record.body = body;
    const name = typeof body?.model === 'string' ? body.model : '';
    if (name === '') return jsonResponse(404, { error: "model '' not found" });
    const model = lookup(name);
    if (!model) return jsonResponse(404, { error: `model '${name}' not found` });
    const badImages = checkImages(body?.images);
    if (badImages) return jsonResponse(400, { error: badImages });
    const badKeepAlive = checkKeepAlive(body?.keep_alive);
    if (badKeepAlive) return jsonResponse(400, { error: badKeepAlive });
    const capabilities = model.capabilities ?? ['completion'];
    if (!capabilities.includes('completion')) return jsonResponse(400, { error: `"${name}" does not support generate` });
    if (state.busy) return jsonResponse(503, { error: 'server busy, please try again.  maximum pending requests exceeded' });
    load(model);
    const badOption = checkOptions(body?.options);
    if (badOption) return jsonResponse(500, { error: badOption });
    if (model.firstByteDelayMs) await sleep(model.firstByteDelayMs);
    if (request.signal.aborted) {
      record.aborted = true;
      record.abortedAt = Date.now();
      return jsonResponse(499, { error: 'request canceled' });
    }
    if (model.crashOnLoad) {
      return streamError(
        500,
        'model runner has unexpectedly stopped, this may be due to resource limitations or an internal error, check ollama server logs for details',
      );
    }
    const prompt = typeof body?.prompt === 'string' ? body.prompt : '';
    if (prompt === '') {
      record.completed = true;
      const unload = body?.keep_alive === 0 || body?.keep_alive === '0';
      return jsonResponse(200, { model: name, created_at: createdAt(), response: '', done: true, done_reason: unload ? 'unload' : 'load' });
    }
    const tokens = model.tokens ?? ['The', ' sky', ' is', ' blue', '.'];
    const thinking = model.thinking ?? [];
    const started = Date.now();
    const final = () => ({
      model: name,
      created_at: createdAt(),
      response: '',
      done: true,
      done_reason: 'stop',
      context: [128006, 9125, 128007],
      total_duration: (Date.now() - started) * 1e6 + 1,
      load_duration: 1_334_875,
      prompt_eval_count: prompt.split(/\s+/).length,
      prompt_eval_duration: 130_079_000,
      eval_count: tokens.length,
      eval_duration: Math.max(1, tokens.length * (model.tokenDelayMs ?? 0)) * 1e6,
    });
    if (body?.stream === false) {
      for (const _ of tokens) await sleep(model.tokenDelayMs ?? 0);
      record.completed = true;
      record.linesWritten = tokens.length;
      return jsonResponse(200, { ...final(), response: tokens.join(''), ...(thinking.length && { thinking: thinking.join('') }) });
    }
    const stream = ndjsonStream(
      record,
      async (write) => {
        for (const piece of thinking) await write({ model: name, created_at: createdAt(), response: '', thinking: piece, done: false });
        const outcome = await writeTokens(write, model, record, tokens, (token) => ({
          model: name,
          created_at: createdAt(),
          response: token,
          done: false,
        }));
        if (outcome) return outcome;
        await write(final());
      },
      model,
    );
    return new Response(stream, { status: 200, headers: { 'Content-Type': 'application/x-ndjson' } });
  }

  async function show(request: Request, record: RecordedRequest): Promise<Response> {
    const { body, error } = await readJsonBody(request);
    if (error) return error;
    record.body = body;
    const name = typeof body?.model === 'string' ? body.model : typeof body?.name === 'string' ? body.name : '';
    if (name === '') return jsonResponse(400, { error: 'model is required' });
    const model = lookup(name);
    if (!model) return jsonResponse(404, { error: `model '${name}' not found` });
    return jsonResponse(200, {
      modelfile: `FROM ${name}`,
      template: '{{ .Prompt }}',
      details: {
        parent_model: '',
        format: 'gguf',
        family: model.family ?? 'llama',
        families: [model.family ?? 'llama'],
        parameter_size: model.parameterSize ?? '3.2B',
        quantization_level: model.quantization ?? 'Q4_K_M',
      },
      model_info: { 'general.architecture': model.family ?? 'llama', 'llama.context_length': 131072 },
      capabilities: model.capabilities ?? ['completion'],
      modified_at: '2026-08-21T10:00:00.000000000+09:00',
    });
  }

  async function pull(request: Request, record: RecordedRequest): Promise<Response> {
    const { body, error } = await readJsonBody(request);
    if (error) return error;
    record.body = body;
    const name = typeof body?.model === 'string' ? body.model : typeof body?.name === 'string' ? body.name : '';
    if (name === '' || /[^a-zA-Z0-9_.:/-]/.test(name)) return jsonResponse(400, { error: 'invalid model name' });
    const entry = registry.get(name);
    const missing = 'pull model manifest: file does not exist';
    if (body?.stream === false) {
      if (!entry) return jsonResponse(500, { error: missing });
      models.set(name, { name });
      record.completed = true;
      return jsonResponse(200, { status: 'success' });
    }
    const stream = ndjsonStream(record, async (write) => {
      await write({ status: 'pulling manifest' });
      if (!entry) {
        await write({ error: missing });
        return;
      }
      const digest = `sha256:${'dde5aa3fc5ffc17176b5e8bdc82f587b24b2678c6c66101bf7da77af9f7ccdff'}`;
      const total = 2_019_377_376;
      for (let tick = 1; tick <= entry.layers; tick++) {
        if (entry.tickDelayMs) await sleep(entry.tickDelayMs);
        await write({ status: `pulling ${digest.slice(7, 19)}`, digest, total, completed: Math.round((total * tick) / entry.layers) });
        record.linesWritten++;
      }
      await write({ status: 'verifying sha256 digest' });
      await write({ status: 'writing manifest' });
      models.set(name, { name });
      await write({ status: 'success' });
    });
    return new Response(stream, { status: 200, headers: { 'Content-Type': 'application/x-ndjson' } });
  }

  const server: Server<undefined> = Bun.serve({
    port,
    hostname: '127.0.0.1',
    idleTimeout: 0,
    async fetch(request) {
      const url = new URL(request.url);
      const record: RecordedRequest = {
        method: request.method,
        path: url.pathname,
        headers: Object.fromEntries(request.headers),
        body: undefined,
        aborted: false,
        completed: false,
        linesWritten: 0,
      };
      requests.push(record);
      request.signal.addEventListener('abort', () => {
        if (!record.completed && !record.aborted) {
          record.aborted = true;
          record.abortedAt = Date.now();
        }
      });
      // allowedHostsMiddleware and gin-contrib/cors: 403 with an empty body.
      if (!isAllowedHost(request.headers.get('host')) || request.headers.has('origin')) return new Response(null, { status: 403 });
      const route = `${request.method} ${url.pathname}`;
      switch (route) {
        case 'GET /':
        case 'HEAD /':
          return new Response('Ollama is running', { headers: { 'Content-Type': 'text/plain; charset=utf-8' } });
        case 'GET /api/version':
          return jsonResponse(200, { version: '0.33.0-rc2' });
        case 'GET /api/tags':
          return jsonResponse(200, {
            models: [...models.values()].map((model) => ({
              name: model.name.includes(':') ? model.name : `${model.name}:latest`,
              model: model.name.includes(':') ? model.name : `${model.name}:latest`,
              modified_at: '2025-05-04T17:37:44.706015396-07:00',
              size: model.size ?? 2_019_393_189,
              digest: 'a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72',
              details: {
                parent_model: '',
                format: 'gguf',
                family: model.family ?? 'llama',
                families: null,
                parameter_size: model.parameterSize ?? '3.2B',
                quantization_level: model.quantization ?? 'Q4_K_M',
              },
            })),
          });
        case 'POST /api/generate':
          return generate(request, record);
        case 'POST /api/chat':
          return chat(request, record);
        case 'POST /api/show':
          return show(request, record);
        case 'POST /api/pull':
          return pull(request, record);
        case 'POST /v1/chat/completions':
          return chatCompletions(request, record);
        case 'POST /v1/embeddings':
          return openAiEmbeddings(request, record);
        case 'GET /v1/models':
          return jsonResponse(200, {
            object: 'list',
            data: [...models.values()].map((model) => ({
              id: model.name.includes(':') ? model.name : `${model.name}:latest`,
              object: 'model',
              created: 1746405464,
              owned_by: 'library',
            })),
          });
        case 'GET /api/ps':
          return jsonResponse(200, {
            models: (loaded ? [...models.values()].filter((model) => loaded.has(model.name)) : [...models.values()].slice(0, 1)).map(
              (model) => ({
                name: model.name.includes(':') ? model.name : `${model.name}:latest`,
                model: model.name.includes(':') ? model.name : `${model.name}:latest`,
                size: model.size ?? 2_019_393_189,
                digest: 'a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72',
                details: {
                  parent_model: '',
                  format: 'gguf',
                  family: 'llama',
                  families: null,
                  parameter_size: '3.2B',
                  quantization_level: 'Q4_K_M',
                },
                expires_at: '2026-11-28T09:00:00.000000000Z',
                size_vram: model.size ?? 2_019_393_189,
                context_length: 4096,
              }),
            ),
          });
        case 'POST /api/embed':
        case 'POST /api/embeddings':
          return embed(request, record, url.pathname === '/api/embeddings');
        case 'DELETE /api/delete':
        case 'POST /api/copy': {
          const { body, error } = await readJsonBody(request);
          if (error) return error;
          record.body = body;
          const name = String(body?.model ?? body?.name ?? body?.source ?? '');
          if (!lookup(name))
            return jsonResponse(404, { error: url.pathname === '/api/copy' ? `model "${name}" not found` : `model '${name}' not found` });
          if (url.pathname === '/api/delete') models.delete(lookup(name)!.name);
          else models.set(String(body?.destination), { ...lookup(name)!, name: String(body?.destination) });
          record.completed = true;
          return new Response(null, { status: 200 });
        }
      }
      // Blobs (ollama-api.md §7): HEAD answers whether Ollama has the digest; POST stores a body
      // whose SHA-256 must be the digest (201), else 400.
      if (url.pathname.startsWith('/api/blobs/') && (request.method === 'HEAD' || request.method === 'POST')) {
        const digest = decodeURIComponent(url.pathname.slice('/api/blobs/'.length));
        if (request.method === 'HEAD') return new Response(null, { status: blobs.has(digest) ? 200 : 404 });
        const bytes = new Uint8Array(await request.arrayBuffer());
        const actual = `sha256:${new Bun.CryptoHasher('sha256').update(bytes).digest('hex')}`;
        if (actual !== digest) return jsonResponse(400, { error: 'digest mismatch' });
        blobs.add(digest);
        record.completed = true;
        return new Response(null, { status: 201 });
      }
      if (request.method === 'GET' && url.pathname.startsWith('/v1/models/')) {
        const id = decodeURIComponent(url.pathname.slice('/v1/models/'.length));
        const model = lookup(id);
        if (!model) return openAiError(404, `model "${id}" not found`, 'not_found_error');
        return jsonResponse(200, { id, object: 'model', created: 1746405464, owned_by: 'library' });
      }
      const known = [
        '/',
        '/api/version',
        '/api/tags',
        '/api/generate',
        '/api/show',
        '/api/pull',
        '/api/chat',
        '/api/ps',
        '/api/embed',
        '/api/embeddings',
        '/api/delete',
        '/api/copy',
        '/v1/chat/completions',
        '/v1/embeddings',
        '/v1/models',
      ];
      if (known.includes(url.pathname))
        return new Response('405 method not allowed', { status: 405, headers: { 'Content-Type': 'text/plain' } });
      return new Response('404 page not found', { status: 404, headers: { 'Content-Type': 'text/plain' } });
    },
  });

  const double: OllamaDouble = {
    url: `http://127.0.0.1:${server.port}`,
    port: server.port as number,
    models,
    loaded,
    registry,
    requests,
    get busy() {
      return state.busy;
    },
    set busy(value: boolean) {
      state.busy = value;
    },
    get streaming() {
      return state.streaming;
    },
    get peakStreaming() {
      return state.peakStreaming;
    },
    resetPeak: () => {
      state.peakStreaming = state.streaming;
    },
    get pendingRequests() {
      return server.pendingRequests;
    },
    last: (path) => [...requests].reverse().find((request) => path === undefined || request.path === path),
    waitFor: async (predicate, timeoutMs = 2000) => {
      const deadline = Date.now() + timeoutMs;
      while (!predicate()) {
        if (Date.now() > deadline) throw new Error('condition not met in time');
        await sleep(10);
      }
    },
    close: async () => {
      await server.stop(true);
    },
    crash: async () => {
      for (const cut of cutters) cut();
      cutters.clear();
      await server.stop(true);
    },
  };
  return double;
}
