import { z } from '@hono/zod-openapi';

// A chat body is JSON, so its fields are real JSON types (no query-string coercion). As on every
// route: a field left out is not sent, and Ollama and the model decide.

/** A number field with its range and a description that shows an example (never pre-filled by /docs). */
const number = (schema: z.ZodNumber, description: string, example: number) =>
  schema.optional().openapi({ description: `${description} Example: \`${example}\`.`, examples: [example] });

// Go's time.ParseDuration syntax, which Ollama uses for keep_alive strings: "5m", "1h30m", "-1m".
const DURATION = /^[+-]?((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+$|^0$/;

export const ToolCall = z
  .object({
    id: z.string().optional().openapi({ description: 'Set by Ollama (`call_…`); send it back as it came.' }),
    function: z.object({
      index: z.number().int().optional(),
      name: z.string().min(1),
      arguments: z.record(z.string(), z.unknown()).openapi({ description: 'A JSON object (not a string, unlike OpenAI).' }),
    }),
  })
  .openapi('ToolCall');

export const ChatMessage = z
  .object({
    role: z.enum(['system', 'user', 'assistant', 'tool']),
    content: z.string().openapi({ description: 'The text of the message (may be empty, e.g. an assistant turn with tool calls).' }),
    images: z.array(z.string().min(1)).optional().openapi({
      description:
        'Images for a vision model: base64 (standard or URL-safe) or `data:image/...;base64,` URLs. Checked by their bytes; they count against MINATO_MAX_IMAGES and MINATO_MAX_IMAGE_BYTES.',
    }),
    tool_calls: z.array(ToolCall).optional().openapi({ description: "An assistant turn's tool calls, sent back as they came." }),
    tool_name: z.string().optional().openapi({ description: 'On a `tool` message: the tool whose result `content` is.' }),
    tool_call_id: z.string().optional(),
    thinking: z.string().optional().openapi({ description: "An assistant turn's thinking, sent back as it came (optional)." }),
  })
  .strict()
  .openapi('ChatMessage');

/** JSON Schemas deeper than this are refused: Ollama's grammar for them would be absurd, and serialising one costs a stack frame a level. */
export const MAX_SCHEMA_DEPTH = 64;

/** Whether `value` nests objects and arrays at most `max` deep (counted without recursion: the input may be 100,000 deep). */
function withinDepth(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [item, depth] = stack.pop()!;
    if (item === null || typeof item !== 'object') continue;
    if (depth > max) return false;
    for (const child of Object.values(item)) if (child !== null && typeof child === 'object') stack.push([child, depth + 1]);
  }
  return true;
}

/** A JSON Schema object, at most MAX_SCHEMA_DEPTH deep. */
const jsonSchema = () =>
  z.record(z.string(), z.unknown()).refine((schema) => withinDepth(schema, MAX_SCHEMA_DEPTH), {
    message: `A JSON Schema nested more than ${MAX_SCHEMA_DEPTH} levels deep is not accepted`,
  });

export const Tool = z
  .object({
    type: z.literal('function'),
    function: z.object({
      name: z.string().min(1),
      description: z.string().optional(),
      parameters: jsonSchema().optional().openapi({ description: 'A JSON Schema of the arguments.' }),
    }),
  })
  .openapi('Tool');

const stop = z
  .union([z.string().min(1, 'A stop sequence cannot be empty'), z.array(z.string().min(1, 'A stop sequence cannot be empty'))])
  .transform((value) => (Array.isArray(value) ? value : [value]))
  .optional()
  .openapi({ description: 'A stop sequence, or a list of them. Example: `["\\n\\n"]`.', examples: [['\n\n']] });

export const ChatRequest = z
  .object({
    messages: z.array(ChatMessage).openapi({
      description:
        'The conversation so far, oldest first. An empty list only loads the model (`done_reason: "load"`): the way to warm it up.',
    }),
    tools: z.array(Tool).optional().openapi({ description: 'Functions the model may call (it needs the `tools` capability).' }),
    format: z
      .union([z.literal('json'), jsonSchema()])
      .optional()
      .openapi({ description: '`"json"`, or a JSON Schema object the answer must follow; passed to Ollama unchanged.' }),
    think: z
      .union([z.boolean(), z.enum(['low', 'medium', 'high', 'max'])])
      .optional()
      .openapi({ description: 'Thinking for models that can (`thinking` capability): true, false, or an effort level.' }),
    keep_alive: z
      .union([z.number(), z.string().regex(DURATION, 'Input should be seconds (e.g. 300, -1) or a duration (e.g. 5m, 1h30m)')])
      .optional()
      .openapi({ description: 'How long the model stays loaded after this answer: seconds (`300`, `-1`, `0`) or a duration (`5m`).' }),
    numa: z.boolean().optional().openapi({ description: 'Accepted and forwarded, but current Ollama ignores it.' }),
    low_vram: z.boolean().optional().openapi({ description: 'Accepted and forwarded, but current Ollama ignores it.' }),
    num_ctx: number(z.number().int().min(1).max(16_777_216), 'Context window in tokens. Changing it reloads the model.', 8192),
    num_keep: number(z.number().int().min(-1).max(16_777_216), 'Tokens kept when the context shifts (-1: all).', 4),
    num_batch: number(z.number().int().min(1).max(65_536), 'Prompt batch size. Changing it reloads the model.', 512),
    seed: number(z.number().int().min(-2_147_483_648).max(2_147_483_647), 'Random seed.', 21),
    temperature: number(z.number().min(0).max(1), 'Sampling temperature from 0 (deterministic) to 1.', 0.7),
    num_predict: number(z.number().int().min(-2).max(16_777_216), 'Most tokens to generate (-1: until a stop).', 256),
    top_k: number(z.number().int().min(0).max(1_000_000), 'Sample only from the k most likely tokens.', 40),
    top_p: number(z.number().min(0).max(1), 'Nucleus sampling.', 0.9),
    min_p: number(z.number().min(0).max(1), 'Drop tokens less likely than min_p times the most likely one.', 0.05),
    repeat_penalty: number(z.number().min(0).max(100), 'Penalty for repeated tokens (1: none).', 1.1),
    stop,
  })
  .strict()
  .openapi('ChatRequest');

export type ChatRequest = z.output<typeof ChatRequest>;

/** What /docs puts in "Try it out": only the required field, so nothing the user did not choose is sent. */
export const CHAT_REQUEST_EXAMPLE = { messages: [{ role: 'user', content: 'Why is the sky blue?' }] };

const statistics = {
  done: z.boolean(),
  done_reason: z.string().optional().openapi({ description: '`stop`, `length`, `load` or `unload`.', example: 'stop' }),
  total_duration: z.number().int().optional().openapi({ description: 'Nanoseconds.' }),
  load_duration: z.number().int().optional().openapi({ description: 'Nanoseconds.' }),
  prompt_eval_count: z.number().int().optional(),
  prompt_eval_duration: z.number().int().optional().openapi({ description: 'Nanoseconds.' }),
  eval_count: z.number().int().optional().openapi({ description: 'Tokens generated.' }),
  eval_duration: z.number().int().optional().openapi({ description: 'Nanoseconds.' }),
};

export const ChatAnswer = z
  .object({
    model: z.string(),
    created_at: z.string(),
    response: z.string().openapi({ description: "The assistant's text (the same as `message.content`), as Minato's other routes answer." }),
    message: z.object({
      role: z.literal('assistant'),
      content: z.string(),
      thinking: z.string().optional(),
      tool_calls: z.array(ToolCall).optional(),
    }),
    ...statistics,
  })
  .openapi('ChatAnswer', {
    example: {
      model: 'llama3.2',
      created_at: '2026-08-21T08:52:23.499127Z',
      response: 'The sky is blue because of Rayleigh scattering.',
      message: { role: 'assistant', content: 'The sky is blue because of Rayleigh scattering.' },
      done: true,
      done_reason: 'stop',
      total_duration: 4883583458,
      load_duration: 1334875,
      prompt_eval_count: 26,
      prompt_eval_duration: 342546000,
      eval_count: 282,
      eval_duration: 4535599000,
    },
  });

export type ChatAnswer = z.output<typeof ChatAnswer>;
