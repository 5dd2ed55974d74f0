import type { Admission } from './admission/queue';
import type { Config } from './config';
import type { Lifecycle } from './lifecycle';
import type { RequestLog } from './middleware/request-context';
import type { Metrics } from './observability/metrics';
import type { OllamaClient } from './ollama/client';

/** What `createApp` is given; anything left out is built from `config`. */
export type AppDependencies = {
  config: Config;
  ollama?: OllamaClient;
  metrics?: Metrics;
  lifecycle?: Lifecycle;
  /** Where the request log goes; stdout when MINATO_LOG_REQUESTS is on. */
  log?: RequestLog;
};

/** What route modules and the generation helpers use: a narrow, built slice of the app's dependencies. */
export type Deps = { config: Config; ollama: OllamaClient; metrics?: Metrics; admission: Admission };
