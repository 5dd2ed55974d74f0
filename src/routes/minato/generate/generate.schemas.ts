import { z } from '@hono/zod-openapi';
import type { ImageSource } from '../../../uploads/images';

// Query strings carry text; these turn it into real types with honest errors. No coercion of
// '' to 0 or of 'yes' to true: a value that is not clearly of the type is a 422.

/**
 * Examples of optional parameters go in `examples` and the description, never `example`: Swagger
 * UI copies an `example` into "Try it out", which would send settings the user never chose.
 */
const withExample = (description: string, example: unknown) => `${description} Example: \`${String(example)}\`.`;

const integer = (min: number, max: number, description: string, example: number) =>
  z
    .string()
    .regex(/^[+-]?\d+$/, 'Input should be a valid integer')
    .transform(Number)
    .pipe(z.number().int().min(min).max(max))
    .optional()
    .openapi({ type: 'integer', minimum: min, maximum: max, description: withExample(description, example), examples: [example] });

const decimal = (min: number, max: number | undefined, description: string, example: number) =>
  z
    .string()
    .regex(/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/, 'Input should be a valid number')
    .transform(Number)
    .pipe(max === undefined ? z.number().min(min) : z.number().min(min).max(max))
    .optional()
    .openapi({
      type: 'number',
      minimum: min,
      ...(max === undefined ? {} : { maximum: max }),
      description: withExample(description, example),
      examples: [example],
    });

const boolean = (description: string) =>
  z
    .enum(['true', 'false', '1', '0', 'True', 'False'])
    .transform((value) => value === 'true' || value === 'True' || value === '1')
    .optional()
    .openapi({ type: 'boolean', description, examples: [true] });

// Go's time.ParseDuration syntax, which Ollama uses for keep_alive strings: "5m", "1h30m", "-1m".
const DURATION = /^[+-]?((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+$|^0$/;

/**
 * keep_alive: seconds as a number (negative keeps the model loaded, 0 unloads after answering)
 * or a Go duration string. Ollama takes a JSON number as seconds but rejects a unitless string,
 * so numbers are sent as numbers and durations as strings.
 */
const keepAlive = z
  .string()
  .refine((value) => /^[+-]?\d+(\.\d+)?$/.test(value) || DURATION.test(value), {
    message: 'Input should be seconds (e.g. 300, -1) or a duration (e.g. 5m, 1h30m)',
  })
  .transform((value): number | string => (/^[+-]?\d+(\.\d+)?$/.test(value) ? Number(value) : value))
  .optional()
  .openapi({
    type: 'string',
    description:
      'How long the model stays loaded after this answer: seconds (`300`; negative keeps it loaded; `0` unloads it right after answering) or a duration (`5m`, `1h30m`). Omitted: Ollama decides (its `OLLAMA_KEEP_ALIVE`, 5 minutes by default).',
    examples: ['5m'],
  });

const stop = z
  .union([z.string().min(1, 'A stop sequence cannot be empty'), z.array(z.string().min(1, 'A stop sequence cannot be empty'))])
  .transform((value) => (Array.isArray(value) ? value : [value]))
  .optional()
  .openapi({
    type: 'array',
    items: { type: 'string' },
    description: 'A stop sequence; repeat the parameter for several (`stop=a&stop=b`).',
    examples: [['\n\n']],
  });

/**
 * The query parameters of every generation route: the original service's, with real types, and
 * with no defaults of their own. An omitted parameter is not sent, so Ollama and the model decide.
 */
export const GenerationQuery = z.object({
  message: z.string().openapi({
    description: 'The prompt. An empty message loads the model without generating (the way to warm it up).',
    example: 'Why is the sky blue?',
  }),
  system_prompt: z
    .string()
    .optional()
    .openapi({
      description: withExample("System prompt; overrides the model's own.", 'Answer in one sentence.'),
      examples: ['Answer in one sentence.'],
    }),
  keep_alive: keepAlive,
  numa: boolean(
    'Accepted for compatibility with the original API and forwarded, but current Ollama ignores it (removed in Ollama 0.3.4; NUMA is detected automatically).',
  ),
  num_ctx: integer(
    1,
    16_777_216,
    'Context window in tokens. Omitted: Ollama picks one from the model and the GPU. Changing it reloads the model.',
    8192,
  ),
  num_keep: integer(-1, 16_777_216, 'Tokens of the prompt kept when the context is shifted (-1: all).', 4),
  num_batch: integer(1, 65_536, "Prompt-processing batch size. Omitted: Ollama's default (512). Changing it reloads the model.", 512),
  low_vram: boolean(
    'Accepted for compatibility with the original API and forwarded, but current Ollama ignores it (removed in Ollama 0.7.0).',
  ),
  seed: integer(-2_147_483_648, 2_147_483_647, 'Random seed; the same seed and prompt give the same answer. Omitted: random.', 21),
  temperature: decimal(0, 1, 'Sampling temperature from 0 (deterministic) to 1; fractions allowed.', 0.7),
  num_predict: integer(-2, 16_777_216, 'Most tokens to generate (-1: until a stop, -2: until the context is full).', 256),
  top_k: integer(0, 1_000_000, 'Sample only from the k most likely tokens.', 40),
  top_p: decimal(0, 1, 'Nucleus sampling: sample from the smallest set of tokens whose probabilities add up to p.', 0.9),
  min_p: decimal(0, 1, 'Drop tokens less likely than min_p times the most likely one.', 0.05),
  repeat_penalty: decimal(0, 100, 'Penalty for repeated tokens (1: none).', 1.1),
  stop,
});

export type GenerationQuery = z.output<typeof GenerationQuery>;

/** The generation parameters Minato puts into Ollama's `options` (the query here, top-level fields on chat). */
export const OPTION_KEYS = [
  'numa',
  'num_ctx',
  'num_keep',
  'num_batch',
  'low_vram',
  'seed',
  'temperature',
  'num_predict',
  'top_k',
  'top_p',
  'min_p',
  'repeat_penalty',
  'stop',
] as const;

/** The body of Ollama's `POST /api/generate`, holding only what the client actually set. */
export function toGenerateRequest(model: string, query: GenerationQuery, images?: ImageSource[]) {
  const options: Record<string, unknown> = {};
  for (const key of OPTION_KEYS) {
    if (query[key] !== undefined) options[key] = query[key];
  }
  return {
    model,
    prompt: query.message,
    stream: true,
    ...(query.system_prompt !== undefined && { system: query.system_prompt }),
    ...(query.keep_alive !== undefined && { keep_alive: query.keep_alive }),
    ...(Object.keys(options).length > 0 && { options }),
    ...(images && images.length > 0 && { images }),
  };
}

const statistics = {
  done: z.boolean().openapi({ example: true }),
  done_reason: z.string().optional().openapi({ description: '`stop`, `length`, `load` or `unload`.', example: 'stop' }),
  total_duration: z.number().int().optional().openapi({ description: 'Nanoseconds.', example: 5043500667 }),
  load_duration: z.number().int().optional().openapi({ description: 'Nanoseconds.', example: 5025959 }),
  prompt_eval_count: z.number().int().optional().openapi({ example: 26 }),
  prompt_eval_duration: z.number().int().optional().openapi({ description: 'Nanoseconds.', example: 325953000 }),
  eval_count: z.number().int().optional().openapi({ description: 'Tokens generated.', example: 290 }),
  eval_duration: z.number().int().optional().openapi({ description: 'Nanoseconds.', example: 4709213000 }),
};

/** Ollama's non-streamed `/api/generate` answer: `response` as the original had it, plus statistics. */
export const GenerateAnswer = z
  .object({
    model: z.string().openapi({ example: 'llama3.2' }),
    created_at: z.string().openapi({ example: '2026-08-21T19:22:45.499127Z' }),
    response: z.string().openapi({ description: 'The answer text.', example: 'The sky is blue because of Rayleigh scattering.' }),
    thinking: z.string().optional().openapi({ description: "A thinking model's reasoning, when it has any." }),
    ...statistics,
  })
  .openapi('GenerateAnswer');

export const StreamLine = z
  .object({
    model: z.string(),
    created_at: z.string(),
    response: z.string(),
    thinking: z.string().optional(),
    ...statistics,
  })
  .partial()
  .extend({ error: z.string().optional().openapi({ description: 'Set on an error line, which ends the stream.' }) })
  .openapi('StreamLine', {
    description:
      'One line of the NDJSON stream (Ollama\'s own lines, unchanged). The last line has `done: true` and the statistics; an `{"error": "..."}` line ends the stream on a failure.',
  });

/** The three streamed media types, chosen by the request's Accept header. */
/**
 * The streamed media types. `text/plain` comes first so that /docs (Swagger UI asks for the first
 * one listed) shows the answer as text rather than failing to parse NDJSON as JSON; clients that
 * send no `Accept` still get NDJSON.
 */
export const streamContent = {
  'text/plain': {
    schema: z.string().openapi({
      description: 'Bare text deltas, as the original streamed them. A failure mid-stream aborts the connection.',
      example: 'The sky is blue because',
    }),
  },
  'application/x-ndjson': {
    schema: StreamLine,
    example: { model: 'llama3.2', created_at: '2026-08-21T08:52:19.385406Z', response: 'The', done: false },
  },
  'text/event-stream': {
    schema: z.string().openapi({
      description: 'Server-Sent Events: `data: <line>` per Ollama line; an error is `event: error`.',
      example: 'data: {"model":"llama3.2","response":"The","done":false}\n\n',
    }),
  },
};

/** Said on every streamed operation: /docs shows a stream only once it has ended, and curl shows it live. */
export const streamDocsNote = (curl: string) =>
  `\n\n**In /docs** the answer appears only once the stream has ended (as \`text/plain\`, the first media type; pick another under *Responses*). To watch it arrive token by token: \`${curl}\`.`;

export const STREAM_DOCS_NOTE = streamDocsNote("curl -N 'http://127.0.0.1:8000/stream/llama3.2?message=Why%20is%20the%20sky%20blue%3F'");

/** The query parameters the generation routes read; others are accepted but ignored (see warnUnknownQuery). */
export const GENERATION_PARAMS: ReadonlySet<string> = new Set(Object.keys(GenerationQuery.shape));
