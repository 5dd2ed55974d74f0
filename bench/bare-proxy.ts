/**
 * The least a Bun proxy can do, as a second baseline: forward to Ollama and hand back its body
 * (natively piped, no line handling, deadlines, validation or metrics). The gap between it and
 * nginx is Bun's; the gap between it and Minato is what Minato's features cost.
 *
 *   PORT=11501 OLLAMA_PORT=11500 bun bench/bare-proxy.ts
 */
const upstream = `http://127.0.0.1:${process.env.OLLAMA_PORT ?? 11500}/api/generate`;

Bun.serve({
  port: Number(process.env.PORT ?? 11501),
  hostname: '127.0.0.1',
  idleTimeout: 0,
  async fetch(request) {
    const url = new URL(request.url);
    const model = url.searchParams.get('model') ?? 'bench-100x0';
    const response = await fetch(upstream, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ model, prompt: url.searchParams.get('message') ?? 'hi', stream: true }),
    });
    if (url.pathname === '/sync') return new Response(await response.text(), { headers: { 'Content-Type': 'application/json' } });
    return new Response(response.body, { headers: { 'Content-Type': 'application/x-ndjson' } });
  },
});
