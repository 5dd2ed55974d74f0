import { describe, expect, test } from 'bun:test';
import fc from 'fast-check';
import { goFold, scanFields } from '../../src/http/json-fields';

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (data: Uint8Array) => new TextDecoder().decode(data);

describe('fields of a relayed body, found as Ollama (Go encoding/json) finds them', () => {
  test("Go's folding: ASCII case, the long s and the Kelvin sign; nothing else folds into ASCII", () => {
    expect(goFold('Model')).toBe(goFold('model'));
    expect(goFold('\u017ftream')).toBe(goFold('stream'));
    expect(goFold('\u212aeep_alive')).toBe(goFold('keep_alive'));
    // The dotted and dotless i fold to themselves in Go's simple folding, not to I.
    expect(goFold('\u0130nput')).not.toBe(goFold('input'));
    expect(goFold('\u0131nput')).not.toBe(goFold('input'));
  });

  test('values are the ones JSON.parse reads, for any object (property-based)', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.jsonValue()), fc.jsonValue(), fc.boolean(), (rest, model, indent) => {
        const object = { ...Object.fromEntries(Object.entries(rest).filter(([key]) => goFold(key) !== 'MODEL')), model };
        const body = bytes(JSON.stringify(object, null, indent ? 2 : undefined));
        const fields = scanFields(body, ['model']);
        expect(fields.get('model')).toEqual(JSON.parse(JSON.stringify(model)));
      }),
      { numRuns: 300 },
    );
  });

  test('a key Ollama would read as a field but spelt otherwise, or given twice, is a 400 naming it', () => {
    expect(() => scanFields(bytes('{"Model":"a"}'), ['model'])).toThrow(/"Model" would be read by Ollama as "model"/);
    expect(() => scanFields(bytes('{"model":"a","model":"b"}'), ['model'])).toThrow(/given more than once/);
    expect(() => scanFields(bytes('{"mod\\u0045l":"a"}'), ['model'])).toThrow(/"modEl"/);
    // Keys Minato does not read are Ollama's business.
    expect(scanFields(bytes('{"model":"a","Prompt":"x","PROMPT":"y"}'), ['model']).get('model')).toBe('a');
  });

  test('malformed bodies are a 400, brackets and quotes inside strings do not fool the scan', () => {
    for (const bad of ['', '[]', '{"model":"a"', '{"model":"a"} x', '{"model" "a"}', '{"a":{"b":[1,2}', '{"a":"\\"}']) {
      expect(() => scanFields(bytes(bad), ['model'])).toThrow(/not a JSON object/);
    }
    const tricky = scanFields(bytes('{"x":"}{\\"model\\":\\"b\\"","y":[{"model":"c"}],"model":"a"}'), ['model']);
    expect(tricky.get('model')).toBe('a');
    expect(() => scanFields(bytes(`{"format":${'['.repeat(2000)}${']'.repeat(2000)}}`), ['model'])).toThrow(/nested more than/);
  });

  test('setting a field replaces it where it is, or adds it first, leaving every other byte as sent', () => {
    const body = '{ "stream": true, "messages": [{"content": "h\\u00e9"}], "stream_options": {"x": 1} }';
    const fields = scanFields(bytes(body), ['stream_options']);
    expect(text(fields.with('stream_options', { include_usage: true }))).toBe(
      '{ "stream": true, "messages": [{"content": "h\\u00e9"}], "stream_options": {"include_usage":true} }',
    );
    expect(text(scanFields(bytes('{"a":1}'), ['stream_options']).with('stream_options', { include_usage: true }))).toBe(
      '{"stream_options":{"include_usage":true},"a":1}',
    );
    expect(text(scanFields(bytes(' { } '), ['stream_options']).with('stream_options', {}))).toBe(' {"stream_options":{} } ');
  });
});
