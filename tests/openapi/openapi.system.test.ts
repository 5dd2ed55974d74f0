import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import createClient from 'openapi-fetch';
import { type Harness, startHarness, TINY_PNG } from '../helpers';
import { generateTypes, openApiDocument, TYPES_FILE } from './generate-types';
import type { paths } from './minato';

let h: Harness;
beforeAll(() => {
  h = startHarness();
});
afterAll(() => h.close());

type Doc = {
  openapi: string;
  servers: { url: string }[];
  paths: Record<
    string,
    Record<
      string,
      { parameters?: { name: string; schema: Record<string, unknown> }[]; responses: Record<string, { content?: Record<string, unknown> }> }
    >
  >;
  components: { schemas: Record<string, unknown> };
};

describe('GET /openapi.json', () => {
  test('is OpenAPI 3.1 with every route, its statuses and the streaming media types', async () => {
    const response = await fetch(`${h.url}/openapi.json`);
    expect(response.status).toBe(200);
    const doc = (await response.json()) as Doc;
    expect(doc.openapi).toBe('3.1.0');
    // Relative, never copied from the Host header (which the client chooses).
    expect(doc.servers[0]!.url).toBe('/');
    expect(Object.keys(doc.paths).sort()).toEqual(
      [
        '/api/blobs/{digest}',
        '/api/chat',
        '/api/copy',
        '/api/create',
        '/api/delete',
        '/api/embed',
        '/api/embeddings',
        '/api/generate',
        '/api/ps',
        '/api/pull',
        '/api/push',
        '/api/show',
        '/api/tags',
        '/api/version',
        '/chat/{model_name}',
        '/health',
        '/install/{model_name}',
        '/metrics',
        '/models_list/',
        '/ready',
        '/stream/chat/{model_name}',
        '/stream/vision/{model_name}',
        '/stream/{model_name}',
        '/vision/{model_name}',
        '/v1/chat/completions',
        '/v1/completions',
        '/v1/embeddings',
        '/v1/models',
        '/v1/models/{model}',
        '/v1/responses',
        '/{model_name}',
      ].sort(),
    );
    const stream = doc.paths['/stream/{model_name}']!.get!;
    expect(Object.keys(stream.responses[200]!.content!).sort()).toEqual(['application/x-ndjson', 'text/event-stream', 'text/plain']);
    for (const status of ['200', '400', '404', '422', '502', '503', '504']) expect(stream.responses[status]).toBeDefined();
    const temperature = stream.parameters!.find((parameter) => parameter.name === 'temperature')!;
    expect(temperature.schema).toMatchObject({ type: 'number', minimum: 0, maximum: 1 });
    for (const name of [
      'HTTPValidationError',
      'ValidationError',
      'Error',
      'GenerateAnswer',
      'Body_answer_on_multimodal_query_vision__model_name__post',
    ]) {
      expect(doc.components.schemas[name]).toBeDefined();
    }
  });

  test('passes the Redocly linter', async () => {
    const file = `${import.meta.dir}/../.generated-openapi.json`;
    await Bun.write(file, JSON.stringify(await openApiDocument()));
    const lint = Bun.spawnSync(['bunx', '--bun', 'redocly', 'lint', file, '--config', '.ci/redocly.yaml', '--format', 'summary'], {
      cwd: `${import.meta.dir}/../..`,
      env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
    });
    await Bun.file(file).delete();
    const output = lint.stdout.toString() + lint.stderr.toString();
    expect(output).toContain('valid');
    expect(lint.exitCode).toBe(0);
  }, 60_000);

  test('the committed generated types match the live document', async () => {
    expect(await generateTypes()).toBe(await Bun.file(TYPES_FILE).text());
  });
});

describe('a client typed from the document (openapi-typescript + openapi-fetch)', () => {
  test('calls every kind of endpoint with typed parameters and answers', async () => {
    const client = createClient<paths>({ baseUrl: h.url });
    const answer = await client.GET('/{model_name}', {
      params: { path: { model_name: 'llama3.2' }, query: { message: 'hi', temperature: 0.5, stop: ['END'] } },
    });
    expect(answer.response.status).toBe(200);
    const text: string | undefined = answer.data?.response;
    expect(text).toBe('The sky is blue.');

    const invalid = await client.GET('/{model_name}', {
      params: { path: { model_name: 'llama3.2' }, query: { message: 'hi', num_ctx: 0 } },
    });
    expect(invalid.response.status).toBe(422);
    const loc = (invalid.error as { detail: { loc: (string | number)[] }[] }).detail[0]!.loc;
    expect(loc).toEqual(['query', 'num_ctx']);

    const models = await client.GET('/models_list/');
    const names: string[] | undefined = models.data?.models_list.map((model) => model.name);
    expect(names).toContain('llama3.2:latest');

    const ready = await client.GET('/ready');
    expect(ready.data?.ollama?.version).toBe('0.33.0-rc2');
  });

  // The two calls the README shows for openapi-fetch beyond plain JSON.
  test('a stream with parseAs: "stream", read chunk by chunk', async () => {
    const client = createClient<paths>({ baseUrl: h.url });
    const { data: stream, response } = await client.GET('/stream/{model_name}', {
      params: { path: { model_name: 'llama3.2' }, query: { message: 'hi' } },
      parseAs: 'stream',
    });
    expect(response.headers.get('content-type')).toBe('application/x-ndjson');
    const lines: string[] = [];
    for await (const text of stream!.pipeThrough(new TextDecoderStream())) lines.push(...text.split('\n').filter(Boolean));
    expect(lines.map((line) => JSON.parse(line).response).join('')).toBe('The sky is blue.');
  });

  test('a multipart vision body from FormData, with the one cast the generated types need', async () => {
    const client = createClient<paths>({ baseUrl: h.url });
    const form = new FormData();
    form.append('images', new Blob([TINY_PNG]), 'cat.png');
    const { data } = await client.POST('/vision/{model_name}', {
      params: { path: { model_name: 'llava' }, query: { message: 'What is this?' } },
      body: form as unknown as { images: string[] }, // the document types a file as a string
    });
    expect(data?.response).toBe('A cat.');
  });
});
