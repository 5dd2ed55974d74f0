/**
 * Ollama model names: `[host[:port]/][namespace/]model[:tag]`, as `model.ParseName` in Ollama
 * accepts them (e.g. `llama3.2`, `llama3.2:3b`, `library/llama3.2`,
 * `hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M`). Every part starts with a letter, digit
 * or `_`, so `..`, empty segments, control characters and spaces can never reach Ollama.
 */
const HOST = String.raw`[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,349}(?::\d{1,5})?`;
// Namespaces, model names and tags share one form.
const PART = '[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,79}';
export const MODEL_NAME_PATTERN = `^(?:(?:${HOST}/)?${PART}/)?${PART}(?::${PART})?$`;
const MODEL_NAME = new RegExp(MODEL_NAME_PATTERN);

export const MODEL_NAME_MAX_LENGTH = 512;

export function isValidModelName(name: string): boolean {
  return name.length <= MODEL_NAME_MAX_LENGTH && MODEL_NAME.test(name) && !name.split('/').some((part) => /^\.+$/.test(part));
}

/**
 * First path segments that are routes of Minato itself, or kept free for later (`api`, `v1`),
 * and so can never be the first segment of a model name in `GET /{model_name}`. A model whose
 * namespace collides is still reachable percent-encoded: `GET /stream%2Fmodel`.
 */
export const RESERVED_FIRST_SEGMENTS = new Set([
  'api',
  'v1',
  'docs',
  'redoc',
  'openapi.json',
  'health',
  'ready',
  'metrics',
  'models_list',
  'stream',
  'chat',
  'vision',
  'install',
  'favicon.ico',
]);

/** Route prefixes after which the rest of the path is one model name (slashes included); longest first. */
const MODEL_PREFIXES = ['/stream/vision/', '/stream/chat/', '/stream/', '/vision/', '/chat/', '/install/'];

/**
 * Hono routes on segments, so a model name with slashes would never match `/{model_name}`.
 * This rewrites the path Hono routes on (not the request) so that everything after a model
 * route's prefix becomes a single percent-encoded segment; the router then decodes it back
 * into `model_name` (Hono's getPath keeps `%2F` and `%25` encoded, so replacing `/` with
 * `%2F` is exact). Raw (`/stream/hf.co/user/repo:Q4_K_M`) and encoded
 * (`/stream/hf.co%2Fuser%2Frepo:Q4_K_M`) forms end up identical. It runs on every request,
 * so it sticks to string scans.
 */
export function routingPath(path: string): string {
  const secondSlash = path.indexOf('/', 1);
  if (secondSlash === -1) return path;
  for (const prefix of MODEL_PREFIXES) {
    if (path.startsWith(prefix)) {
      return path.indexOf('/', prefix.length) === -1 ? path : prefix + path.slice(prefix.length).replaceAll('/', '%2F');
    }
  }
  if (RESERVED_FIRST_SEGMENTS.has(path.slice(1, secondSlash))) return path;
  return `/${path.slice(1).replaceAll('/', '%2F')}`;
}

/**
 * The one name Ollama resolves `name` to, as its `model.ParseName` fills in defaults and compares
 * names case-insensitively: `llama3.2`, `llama3.2:latest`, `library/llama3.2` and
 * `REGISTRY.ollama.ai/library/LLAMA3.2` are all `registry.ollama.ai/library/llama3.2:latest`.
 * Admission counts slots per resolved name, so spellings of one model share its slots.
 */
export function resolvedModelName(name: string): string {
  let rest = name.toLowerCase();
  let tag = 'latest';
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  const parts = rest.split('/');
  const model = parts.pop();
  const namespace = parts.pop() ?? 'library';
  const host = parts.pop() ?? 'registry.ollama.ai';
  return `${host}/${namespace}/${model}:${tag}`;
}
