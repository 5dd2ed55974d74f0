import type { Admission } from './admission/queue';
import type { BodyBudget } from './http/body';
import type { Config } from './config';
import type { Lifecycle } from './lifecycle';
import type { RequestLog } from './middleware/request-context';
import type { Metrics } from './observability/metrics';
import type { OllamaClient } from './ollama/client';
import type { Fleet } from './ollama/fleet';

/** What `createApp` is given; anything left out is built from `config`. */
export type AppDependencies = {
  config: Config;
  ollama?: OllamaClient;
  metrics?: Metrics;
  /** Several Ollama instances (OLLAMA_HOSTS); built from `config` when it lists more than one. */
  fleet?: Fleet;
  lifecycle?: Lifecycle;
  /** Where the request log goes; stdout when MINATO_LOG_REQUESTS is on. */
  log?: RequestLog;
};

/** What route modules and the generation helpers use: a narrow, built slice of the app's dependencies. */
export type Deps = {
  config: Config;
  /** Ollama; with several instances, the fleet's routing client. */
  ollama: OllamaClient;
  metrics?: Metrics;
  admission: Admission;
  /** Only with several instances: where each model is, and the routes that concern every instance. */
  fleet?: Fleet;
  /** What the request bodies in flight may hold together (MINATO_BODY_BUDGET). */
  bodyBudget: BodyBudget;
};
