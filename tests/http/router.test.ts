import { describe, expect, test } from 'bun:test';
import { createRoute, z } from '@hono/zod-openapi';
import { createRouter } from '../../src/http/router';

/**
 * The router validates path parameters and the query in one pass (src/http/router.ts) instead of
 * zod-openapi's validator per target: what a route sees and what a client gets back must be what
 * zod-openapi gives, and the OpenAPI document must still describe the route.
 */
function appWith(refine: (value: string) => boolean | Promise<boolean>) {
  const app = createRouter();
  app.use('*', async (c, next) => {
    c.set('record', {});
    await next();
  });
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/things/{id}',
      request: {
        params: z.object({ id: z.string().regex(/^\d+$/) }),
        query: z.object({
          tag: z.string().refine(refine, 'not a known tag'),
          n: z.string().transform(Number).optional(),
          many: z.array(z.string()).optional(),
        }),
      },
      responses: { 200: { description: 'ok' } },
    }),
    (c) => c.json({ params: c.req.valid('param'), query: c.req.valid('query') }),
  );
  return app;
}

describe('one-pass validation of path parameters and query', () => {
  test('valid values reach the handler parsed (transforms applied, repeated parameters as arrays)', async () => {
    const response = await appWith((tag) => tag === 'a').request('/api/things/42?tag=a&n=7&many=x&many=y');
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ params: { id: '42' }, query: { tag: 'a', n: 7, many: ['x', 'y'] } });
  });

  test('the query is checked first, then the path, each failure as the 422 naming its place', async () => {
    const app = appWith((tag) => tag === 'a');
    const badQuery = await app.request('/api/things/x?tag=b');
    expect(badQuery.status).toBe(422);
    expect(((await badQuery.json()) as { detail: unknown }).detail).toEqual([
      { loc: ['query', 'tag'], msg: 'not a known tag', type: 'custom' },
    ]);
    const badPath = await app.request('/api/things/x?tag=a');
    expect(badPath.status).toBe(422);
    expect(((await badPath.json()) as { detail: { loc: unknown }[] }).detail[0]?.loc).toEqual(['path', 'id']);
    const missing = await app.request('/api/things/1');
    expect(((await missing.json()) as { detail: unknown }).detail).toEqual([
      { loc: ['query', 'tag'], msg: 'Field required', type: 'missing' },
    ]);
  });

  test('a schema with an asynchronous refinement is still validated (asynchronously)', async () => {
    const app = appWith(async (tag) => {
      await Bun.sleep(1);
      return tag === 'a';
    });
    expect((await app.request('/api/things/1?tag=a')).status).toBe(200);
    expect((await app.request('/api/things/1?tag=b')).status).toBe(422);
  });

  test('the OpenAPI document still lists the parameters', () => {
    const document = appWith(() => true).getOpenAPIDocument({ openapi: '3.0.0', info: { title: 't', version: '1' } });
    const parameters = (document.paths['/api/things/{id}']?.get?.parameters ?? []) as { name: string; in: string }[];
    expect(parameters.map((p) => `${p.in}:${p.name}`).sort()).toEqual(['path:id', 'query:many', 'query:n', 'query:tag']);
  });
});
