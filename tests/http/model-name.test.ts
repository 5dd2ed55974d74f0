import { describe, expect, test } from 'bun:test';
import { isValidModelName, resolvedModelName, routingPath } from '../../src/http/model-name';

describe('routingPath', () => {
  const cases: [string, string][] = [
    ['/llama3.2', '/llama3.2'],
    ['/hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M', '/hf.co%2Fbartowski%2FLlama-3.2-1B-Instruct-GGUF:Q4_K_M'],
    ['/stream/llama3.2', '/stream/llama3.2'],
    ['/stream/library/llama3.2', '/stream/library%2Fllama3.2'],
    ['/stream/vision/hf.co/a/b', '/stream/vision/hf.co%2Fa%2Fb'],
    ['/vision/a/b', '/vision/a%2Fb'],
    ['/install/a/b:c', '/install/a%2Fb:c'],
    ['/stream/hf.co%2Fa%2Fb', '/stream/hf.co%2Fa%2Fb'],
    ['/models_list/', '/models_list/'],
    ['/api/tags', '/api/tags'],
    ['/docs/swagger-ui.css', '/docs/swagger-ui.css'],
    ['/stream/visionary/x', '/stream/visionary%2Fx'],
  ];
  for (const [path, routed] of cases) test(`${path} → ${routed}`, () => expect(routingPath(path)).toBe(routed));
});

describe('isValidModelName', () => {
  test('accepts what Ollama accepts', () => {
    for (const name of [
      'llama3.2',
      'llama3.2:3b',
      'library/llama3.2',
      'hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M',
      'localhost:5000/ns/model:tag',
      'qwen2.5vl:7b-q4_K_M',
    ]) {
      expect(isValidModelName(name)).toBe(true);
    }
  });
  test('refuses what it never could', () => {
    for (const name of ['', '..', 'a/../b', 'a b', '-x', 'a//b', 'a/b/c/d', 'x:', ':x', 'a\nb', 'a\u0000b', `${'a'.repeat(600)}`]) {
      expect(isValidModelName(name)).toBe(false);
    }
  });
});

describe('resolvedModelName', () => {
  test("every spelling Ollama resolves to one model gives one name (admission's key)", () => {
    const one = ['hang', 'hang:latest', 'library/hang', 'HANG', 'registry.ollama.ai/library/hang:latest', 'Library/Hang:LATEST'];
    expect(new Set(one.map(resolvedModelName))).toEqual(new Set(['registry.ollama.ai/library/hang:latest']));
    expect(resolvedModelName('hang:7b')).not.toBe(resolvedModelName('hang'));
    expect(resolvedModelName('someone/hang')).not.toBe(resolvedModelName('hang'));
    expect(resolvedModelName('hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M')).toBe(
      'hf.co/bartowski/llama-3.2-1b-instruct-gguf:q4_k_m',
    );
    expect(resolvedModelName('localhost:5000/team/model')).toBe('localhost:5000/team/model:latest');
  });
});
