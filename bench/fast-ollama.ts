/**
 * A fast stand-in for Ollama, for benchmarks only: it must never be the bottleneck. The model
 * name sets the answer: `bench-<lines>x<rate>` streams <lines> token lines at <rate> lines/s per
 * stream (0: as fast as the client reads), then Ollama's final line. Framing and content types
 * are Ollama's (see tests/ollama-double.ts for the faithful double the tests use).
 *
 *   PORT=11500 bun bench/fast-ollama.ts
 */
const encoder = new TextEncoder();
const port = Number(process.env.PORT ?? 11500);

const tokenLine = (model: string) =>
  encoder.encode(`${JSON.stringify({ model, created_at: '2026-08-21T08:52:19.385406Z', response: ' token', done: false })}\n`);
const finalLine = (model: string, lines: number, rate: number) =>
  encoder.encode(
    `${JSON.stringify({
      model,
      created_at: '2026-08-21T08:52:22.499127Z',
      response: '',
      done: true,
      done_reason: 'stop',
      total_duration: 1_000_000_000,
      load_duration: 1_000_000,
      prompt_eval_count: 8,
      prompt_eval_duration: 10_000_000,
      eval_count: lines,
      eval_duration: rate > 0 ? Math.round((lines / rate) * 1e9) : lines * 1_000_000,
    })}\n`,
  );

/** `/api/chat` lines: the token in `message.content`. */
const chatTokenLine = (model: string) =>
  encoder.encode(
    `${JSON.stringify({ model, created_at: '2026-08-21T08:52:19.385406Z', message: { role: 'assistant', content: ' token' }, done: false })}\n`,
  );
const chatFinalLine = (model: string, lines: number, rate: number) => {
  const final = JSON.parse(new TextDecoder().decode(finalLine(model, lines, rate)));
  delete final.response;
  return encoder.encode(`${JSON.stringify({ ...final, message: { role: 'assistant', content: '' } })}\n`);
};
/** Ollama's /v1 SSE: one `data:` event per token, the finish chunk, the usage chunk when asked, `[DONE]`. */
const sse = (data: unknown) => encoder.encode(`data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`);
const v1Chunk = (model: string, delta: Record<string, unknown>, finish: string | null) =>
  sse({
    id: 'chatcmpl-42',
    object: 'chat.completion.chunk',
    created: 1755766339,
    model,
    system_fingerprint: 'fp_ollama',
    choices: [{ index: 0, delta, finish_reason: finish }],
  });

const cache = new Map<string, { token: Uint8Array; final: Uint8Array; lines: number; rate: number }>();
function answerFor(model: string) {
  let answer = cache.get(model);
  if (!answer) {
    const match = /^bench-(\d+)x(\d+)/.exec(model);
    const lines = match ? Number(match[1]) : 100;
    const rate = match ? Number(match[2]) : 0;
    answer = { token: tokenLine(model), final: finalLine(model, lines, rate), lines, rate };
    cache.set(model, answer);
  }
  return answer;
}

const json = (body: unknown) => new Response(JSON.stringify(body), { headers: { 'Content-Type': 'application/json; charset=utf-8' } });

const server = Bun.serve({
  port,
  hostname: '127.0.0.1',
  idleTimeout: 0,
  async fetch(request) {
    const { pathname } = new URL(request.url);
    if (pathname === '/api/version') return json({ version: '0.33.0-bench' });
    if (pathname === '/api/show') return json({ capabilities: ['completion', 'vision'], details: { family: 'bench' } });
    if (pathname === '/api/tags') return json({ models: [] });
    const kind =
      pathname === '/api/generate'
        ? 'generate'
        : pathname === '/api/chat'
          ? 'chat'
          : pathname === '/v1/chat/completions'
            ? 'v1'
            : undefined;
    if (!kind) return new Response('404 page not found', { status: 404 });
    const body = (await request.json()) as { model: string; stream_options?: { include_usage?: boolean } };
    const answer = answerFor(body.model);
    const { lines, rate } = answer;
    let { token, final } = answer;
    if (kind === 'chat') {
      token = chatTokenLine(body.model);
      final = chatFinalLine(body.model, lines, rate);
    } else if (kind === 'v1') {
      token = v1Chunk(body.model, { role: 'assistant', content: ' token' }, null);
      const usage = body.stream_options?.include_usage
        ? [
            sse({
              id: 'chatcmpl-42',
              object: 'chat.completion.chunk',
              created: 1755766339,
              model: body.model,
              system_fingerprint: 'fp_ollama',
              choices: [],
              usage: { prompt_tokens: 8, completion_tokens: lines, total_tokens: 8 + lines },
            }),
          ]
        : [];
      const parts = [v1Chunk(body.model, { role: 'assistant', content: '' }, 'stop'), ...usage, sse('[DONE]')];
      final = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
      let at = 0;
      for (const part of parts) {
        final.set(part, at);
        at += part.length;
      }
    }
    let sent = 0;
    const interval = rate > 0 ? 1000 / rate : 0;
    const stream = new ReadableStream<Uint8Array>(
      {
        async pull(controller) {
          if (interval > 0) await Bun.sleep(interval);
          if (sent < lines) {
            sent++;
            controller.enqueue(token);
          } else {
            controller.enqueue(final);
            controller.close();
          }
        },
      },
      { highWaterMark: 0 },
    );
    return new Response(stream, { headers: { 'Content-Type': kind === 'v1' ? 'text/event-stream' : 'application/x-ndjson' } });
  },
});

console.log(`fast-ollama listening on ${server.port}`);
