/// <reference path="../../assets.d.ts" />
import type { AppRouter } from '../../http/router';
import { SECURITY_SCHEMES } from '../../middleware/auth';

// Swagger UI is served from the installed swagger-ui-dist package rather than a CDN: the GPU box
// a sidecar runs on is often offline, and the reference must work there too. Imported as files,
// so that `bun build --compile` embeds them in the single executable (`bun run build`).
import swaggerCss from 'swagger-ui-dist/swagger-ui.css' with { type: 'file' };
import swaggerJs from 'swagger-ui-dist/swagger-ui-bundle.js' with { type: 'file' };

const SWAGGER_ASSETS = {
  'swagger-ui.css': { path: swaggerCss, type: 'text/css; charset=utf-8' },
  'swagger-ui-bundle.js': { path: swaggerJs, type: 'text/javascript; charset=utf-8' },
} as const;

const page = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Minato API reference</title>
  <link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({ url: '/openapi.json', dom_id: '#swagger-ui', deepLinking: true, tryItOutEnabled: true, persistAuthorization: true });
  </script>
</body>
</html>`;

export const OPENAPI_INFO = {
  openapi: '3.1.0',
  info: {
    title: 'Minato',
    version: '1.0.0',
    description:
      'A small REST sidecar for Ollama: answers, streams, vision, installs and model lists, with the original Minato (FastAPI) contract kept. Errors are `{"detail": "...", "code": "..."}`; validation errors FastAPI\'s `HTTPValidationError`.',
  },
  // Every operation declares its own requirement (a scope, or none when its path is public).
  tags: [
    { name: 'Generate', description: 'Text answers, whole or streamed.' },
    { name: 'Chat', description: 'Conversations: history, tools, structured output, images, thinking.' },
    { name: 'Vision', description: 'Answers about images.' },
    { name: 'Models', description: 'Installed models and installing more.' },
    { name: 'Operations', description: 'Liveness and readiness probes, metrics.' },
  ],
};

export function registerDocsRoutes(app: AppRouter) {
  for (const [name, scheme] of Object.entries(SECURITY_SCHEMES)) app.openAPIRegistry.registerComponent('securitySchemes', name, scheme);
  // A relative server: tools resolve it against the address they fetched the document from.
  // Never the request's Host header, which a client (or a DNS-rebinding page) chooses.
  app.doc31('/openapi.json', {
    ...OPENAPI_INFO,
    servers: [{ url: '/', description: 'This Minato sidecar (the address this document was fetched from)' }],
  });
  app.get('/docs', (c) => c.html(page));
  app.get('/redoc', (c) => c.redirect('/docs', 301));
  for (const [name, { path, type }] of Object.entries(SWAGGER_ASSETS)) {
    app.get(
      `/docs/${name}`,
      () => new Response(Bun.file(path), { headers: { 'Content-Type': type, 'Cache-Control': 'public, max-age=86400' } }),
    );
  }
}
