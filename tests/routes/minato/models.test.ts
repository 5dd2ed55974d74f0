import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { type Harness, json, startHarness } from '../../helpers';

let h: Harness;
beforeAll(() => {
  h = startHarness({}, [{ name: 'llama3.2', size: 2_019_393_189, family: 'llama', parameterSize: '3.2B', quantization: 'Q4_K_M' }]);
});
afterAll(() => h.close());

describe('GET /models_list/', () => {
  test('lists the models with size_mb as a number of MiB', async () => {
    const response = await fetch(`${h.url}/models_list/`);
    expect(response.status).toBe(200);
    expect(await json(response)).toEqual({
      models_list: [
        {
          name: 'llama3.2:latest',
          size_mb: Math.round((2_019_393_189 / 1024 / 1024) * 100) / 100,
          format: 'gguf',
          family: 'llama',
          parameter_size: '3.2B',
          quantization_level: 'Q4_K_M',
          modified_at: '2025-05-04T17:37:44.706015396-07:00',
          digest: 'a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72',
        },
      ],
    });
  });

  test('answers without the trailing slash too (the original sent that to GET /{model_name})', async () => {
    const response = await fetch(`${h.url}/models_list`);
    expect(response.status).toBe(200);
    expect((await json(response)).models_list).toHaveLength(1);
  });

  test('an empty Ollama is an empty list', async () => {
    h.ollama.models.clear();
    expect(await json(await fetch(`${h.url}/models_list`))).toEqual({ models_list: [] });
  });
});
