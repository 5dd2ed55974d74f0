/**
 * The shapes of the joined answers Minato builds from Ollama's streams. They come from Ollama's
 * JSON, so they are asserted once here, at the adapter's edge; routes and typed clients see these.
 */
export type Statistics = {
  model: string;
  created_at: string;
  done: boolean;
  done_reason?: string;
  total_duration?: number;
  load_duration?: number;
  prompt_eval_count?: number;
  prompt_eval_duration?: number;
  eval_count?: number;
  eval_duration?: number;
};

export type GenerateResult = Statistics & { response: string; thinking?: string };

export type ToolCall = { id?: string; function: { index?: number; name: string; arguments: Record<string, unknown> } };

export type ChatResult = Statistics & {
  response: string;
  message: { role: 'assistant'; content: string; thinking?: string; tool_calls?: ToolCall[] };
};
