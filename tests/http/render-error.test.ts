import { describe, expect, test } from 'bun:test';
import { ApiError } from '../../src/http/errors';
import { errorPayload } from '../../src/http/render-error';

// One error, three dialects: what a client of each surface parses (ollama-js reads `error` as a
// string, the openai SDK reads `error.message` and `error.type`, Minato's clients `detail`).
describe('errorPayload', () => {
  const limited = new ApiError(429, 'Rate limit of 600 requests per minute reached.', 'rate_limited', { 'Retry-After': '3' });
  const invalid = new ApiError(422, 'invalid', 'validation_error', {}, [{ loc: ['body', 'temperature'], msg: 'Too big', type: 'too_big' }]);

  test("Minato's own routes: {detail, code}, validation errors as FastAPI's list", () => {
    expect(errorPayload('minato', limited)).toEqual({ detail: 'Rate limit of 600 requests per minute reached.', code: 'rate_limited' });
    expect(errorPayload('minato', invalid)).toEqual({
      detail: [{ loc: ['body', 'temperature'], msg: 'Too big', type: 'too_big' }],
      code: 'validation_error',
    });
  });

  test('the Ollama-native surface: {"error": "<message>"}', () => {
    expect(errorPayload('ollama', limited)).toEqual({ error: 'Rate limit of 600 requests per minute reached.' });
    expect(errorPayload('ollama', invalid)).toEqual({ error: 'body.temperature: Too big' });
  });

  test('the OpenAI surface: {"error": {message, type, param, code}}', () => {
    expect(errorPayload('openai', limited)).toEqual({
      error: { message: 'Rate limit of 600 requests per minute reached.', type: 'rate_limit_error', param: null, code: 'rate_limited' },
    });
    expect(errorPayload('openai', invalid)).toEqual({
      error: { message: 'body.temperature: Too big', type: 'invalid_request_error', param: 'temperature', code: 'validation_error' },
    });
    expect((errorPayload('openai', new ApiError(401, 'no key', 'unauthorized')) as { error: { type: string } }).error.type).toBe(
      'authentication_error',
    );
  });
});
