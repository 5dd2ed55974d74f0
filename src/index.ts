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

const server = startServer({ config });
console.log(`minato: listening on http://${server.hostname}:${server.port} (Ollama at ${config.ollamaHost}; API reference at /docs)`);
