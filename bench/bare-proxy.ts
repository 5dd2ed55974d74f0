/**
 * The least a Bun proxy can do, as a second baseline: forward to Ollama and hand back its body
 * (natively piped, no line handling, deadlines, validation or metrics). The gap between it and
 * nginx is Bun's; the gap between it and Minato is what Minato's features cost.
 *
 * With JS_RELAY=1 it reads the body in JavaScript and hands each chunk on through a pull-based
 * ReadableStream, as any relay that looks at the lines must (still no features): the gap between
 * the two modes is what reading in JavaScript costs at all.
 *
 *   PORT=11501 OLLAMA_PORT=11500 bun bench/bare-proxy.ts
 */
const JS_RELAY = process.env.JS_RELAY === '1';

function readInJs(body: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        const { done, value } = await reader.read();
        if (done) controller.close();
        else controller.enqueue(value);
      },
      cancel: (reason) => reader.cancel(reason),
    },
    { highWaterMark: 0 },
  );
}
const ollama = `http://127.0.0.1:${process.env.OLLAMA_PORT ?? 11500}`;

Bun.serve({
  port: Number(process.env.PORT ?? 11501),
  hostname: '127.0.0.1',
  idleTimeout: 0,
  async fetch(request) {
    const url = new URL(request.url);
    const model = url.searchParams.get('model') ?? 'bench-100x0';
    // The same upstream call as each surface of Minato makes: /api/generate, /api/chat, /v1 SSE.
    const api = url.searchParams.get('api') ?? 'generate';
    const messages = [{ role: 'user', content: url.searchParams.get('message') ?? 'hi' }];
    const body =
      api === 'chat'
        ? { model, messages, stream: true }
        : api === 'v1'
          ? { model, messages, stream: true, stream_options: { include_usage: true } }
          : { model, prompt: url.searchParams.get('message') ?? 'hi', stream: true };
    const response = await fetch(`${ollama}${api === 'v1' ? '/v1/chat/completions' : `/api/${api}`}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (url.pathname === '/sync') return new Response(await response.text(), { headers: { 'Content-Type': 'application/json' } });
    const relayed = JS_RELAY && response.body ? readInJs(response.body) : response.body;
    return new Response(relayed, { headers: { 'Content-Type': api === 'v1' ? 'text/event-stream' : 'application/x-ndjson' } });
  },
});
