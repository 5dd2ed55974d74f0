/**
 * A realistic cadence for `bun run bench`: N streams at once, each read chunk by chunk, noting the
 * gap between consecutive chunks (the stand-in writes a token every 1/rate s). Run as its own
 * process, so that the reading does not share the bench runner's event loop. Prints one JSON line:
 * streams completed, errors, and the p50/p99 of the gaps in ms.
 *
 *   bun bench/cadence.ts <url> <streams> [json-body] [header:value ...]
 */
const [url, count, body, ...headerArgs] = process.argv.slice(2);
const streams = Number(count);
const headers: Record<string, string> = {};
for (const arg of headerArgs) {
  const colon = arg.indexOf(':');
  headers[arg.slice(0, colon)] = arg.slice(colon + 1);
}
if (body) headers['Content-Type'] = 'application/json';

const gaps: number[] = [];
let completed = 0;
let errors = 0;

async function one() {
  try {
    const response = await fetch(url!, body ? { method: 'POST', body, headers } : { headers });
    if (response.status !== 200 || !response.body) {
      errors++;
      await response.text().catch(() => {});
      return;
    }
    const reader = response.body.getReader();
    let last: number | undefined;
    for (;;) {
      const { done } = await reader.read();
      const now = performance.now();
      if (done) break;
      if (last !== undefined) gaps.push(now - last);
      last = now;
    }
    completed++;
  } catch {
    errors++;
  }
}

await Promise.all(Array.from({ length: streams }, one));
gaps.sort((a, b) => a - b);
const at = (q: number) => gaps[Math.min(gaps.length - 1, Math.floor(q * gaps.length))] ?? Number.NaN;
console.log(JSON.stringify({ completed, errors, gaps: gaps.length, p50: at(0.5), p99: at(0.99) }));
export {};
