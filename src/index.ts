import { ConfigError, loadConfig } from './config';
import { startServer } from './server';

let config: ReturnType<typeof loadConfig>;
try {
  config = loadConfig();
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  for (const problem of error.problems) console.error(`minato: invalid configuration: ${problem}`);
  process.exit(1);
}

// Bun's fetch runs at most 256 requests at once (BUN_CONFIG_MAX_HTTP_REQUESTS, read only when
// the process starts); more concurrent generations would wait inside Bun, invisibly. The start
// script raises it; say so when Minato was started some other way.
if (!process.env.BUN_CONFIG_MAX_HTTP_REQUESTS) {
  console.warn(
    'minato: BUN_CONFIG_MAX_HTTP_REQUESTS is not set, so at most 256 requests to Ollama run at once; start with `bun run start`, which sets it.',
  );
}

const server = startServer({ config });
console.log(`minato: listening on http://${server.hostname}:${server.port} (Ollama at ${config.ollamaHost}; API reference at /docs)`);
