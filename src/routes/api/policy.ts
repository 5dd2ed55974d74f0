import type { Scope } from '../../security/api-keys';

/**
 * Ollama's native endpoints as Minato serves them under `/api/*`, one row each: what a key needs,
 * whether the request is a generation (admission queue, answer deadlines), how its answer streams.
 * Requests are relayed as sent; these facts are what Minato adds.
 */
export type ApiPolicy = {
  method: 'get' | 'post' | 'delete';
  path: string;
  summary: string;
  /** `any`: any valid key (read-only metadata). */
  scope: Scope | 'any';
  /** A generation: the model (from the body) goes through the admission queue. */
  generation?: boolean;
  /** The answer streams NDJSON unless the body says `"stream": false` (Ollama's default is true). */
  streams?: 'answer' | 'progress';
  /** Where the body names the model (pull and push accept `name` too). */
  modelFields?: ('model' | 'name' | 'source')[];
  /**
   * With several Ollama instances, what concerns all of them: `list` answers the union (each model
   * with its `hosts`), `pull` pulls on every healthy instance, `change` deletes or copies on every
   * instance that has the model. `?host=` narrows any of them to one instance.
   */
  everywhere?: 'list' | 'pull' | 'change';
};

export const API_POLICIES: ApiPolicy[] = [
  {
    method: 'post',
    path: '/api/chat',
    summary: 'Chat (Ollama-native)',
    scope: 'generate',
    generation: true,
    streams: 'answer',
    modelFields: ['model'],
  },
  {
    method: 'post',
    path: '/api/generate',
    summary: 'Generate (Ollama-native)',
    scope: 'generate',
    generation: true,
    streams: 'answer',
    modelFields: ['model'],
  },
  {
    method: 'post',
    path: '/api/embed',
    summary: 'Embeddings (Ollama-native)',
    scope: 'generate',
    generation: true,
    modelFields: ['model'],
  },
  {
    method: 'post',
    path: '/api/embeddings',
    summary: 'Embedding, legacy (Ollama-native)',
    scope: 'generate',
    generation: true,
    modelFields: ['model'],
  },
  { method: 'post', path: '/api/show', summary: "A model's details and capabilities", scope: 'any', modelFields: ['model', 'name'] },
  { method: 'get', path: '/api/tags', summary: 'Installed models', scope: 'any', everywhere: 'list' },
  { method: 'get', path: '/api/ps', summary: 'Loaded models', scope: 'any', everywhere: 'list' },
  { method: 'get', path: '/api/version', summary: "Ollama's version", scope: 'any' },
  {
    method: 'post',
    path: '/api/pull',
    summary: 'Pull a model',
    scope: 'admin',
    streams: 'progress',
    modelFields: ['model', 'name'],
    everywhere: 'pull',
  },
  { method: 'post', path: '/api/push', summary: 'Push a model', scope: 'admin', streams: 'progress', modelFields: ['model', 'name'] },
  { method: 'post', path: '/api/create', summary: 'Create a model', scope: 'admin', streams: 'progress', modelFields: ['model', 'name'] },
  { method: 'post', path: '/api/copy', summary: 'Copy a model', scope: 'admin', modelFields: ['source'], everywhere: 'change' },
  {
    method: 'delete',
    path: '/api/delete',
    summary: 'Delete a model',
    scope: 'admin',
    modelFields: ['model', 'name'],
    everywhere: 'change',
  },
];
