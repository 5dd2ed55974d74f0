import { describe, expect, test } from 'bun:test';
import fc from 'fast-check';
import { JsonImagesError, JsonImagesReader } from '../../src/uploads/json-images';

const LIMITS = { maxImages: 4, maxBase64Length: 4096 };

/** Feeds `text` in chunks of `size` bytes; returns the images as standard base64 with padding. */
function read(text: string, size = 7, limits = LIMITS): string[] {
  const bytes = new TextEncoder().encode(text);
  const reader = new JsonImagesReader(limits);
  for (let at = 0; at < bytes.length; at += size) reader.push(bytes.slice(at, at + size));
  return reader.end().map((image) => Buffer.concat(image.pieces).toString('latin1') + image.finish());
}

function problem(text: string, size = 7) {
  try {
    read(text, size);
  } catch (error) {
    if (error instanceof JsonImagesError) return error.problem;
    throw error;
  }
  return undefined;
}

describe('JsonImagesReader', () => {
  test('any chunking, any JSON spelling of the same images: standard, URL-safe, data: URLs, escapes, line breaks', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ minLength: 1, maxLength: 300 }), { minLength: 1, maxLength: 4 }),
        fc.integer({ min: 1, max: 64 }),
        fc.constantFrom('standard', 'urlsafe', 'dataurl', 'escaped', 'wrapped'),
        fc.constantFrom('', ' ', '\n\t '),
        (images, size, spelling, ws) => {
          const spelled = images.map((bytes) => {
            const b64 = Buffer.from(bytes).toString('base64');
            switch (spelling) {
              case 'standard':
                return JSON.stringify(b64);
              case 'urlsafe':
                return JSON.stringify(Buffer.from(bytes).toString('base64url'));
              case 'dataurl':
                return JSON.stringify(`data:image/png;base64,${b64}`).replaceAll('/', '\\/');
              case 'escaped':
                return JSON.stringify(b64).replaceAll('/', '\\/').replace(/A/g, '\\u0041');
              default:
                return JSON.stringify(b64.replace(/(.{76})/g, '$1\n'));
            }
          });
          const text = `${ws}{${ws}"images"${ws}:${ws}[${ws}${spelled.join(`${ws},${ws}`)}${ws}]${ws}}${ws}`;
          expect(read(text, size)).toEqual(images.map((bytes) => Buffer.from(bytes).toString('base64')));
        },
      ),
      { numRuns: 300 },
    );
  });

  test('standard base64 that needs no translation is kept as views of the chunks, not copied', () => {
    const body = new TextEncoder().encode(`{"images":["${'QUJD'.repeat(100)}"]}`);
    const reader = new JsonImagesReader(LIMITS);
    reader.push(body);
    const [image] = reader.end();
    expect(image!.pieces.every((piece) => piece.buffer === body.buffer)).toBe(true);
  });

  test('a field other than images is refused as soon as its name is read, before its value', () => {
    const reader = new JsonImagesReader(LIMITS);
    expect(() => reader.push(new TextEncoder().encode('{"junk":'))).toThrow(JsonImagesError);
    expect(problem('{"prompt": "hi", "images": []}')).toEqual({ kind: 'extra_field', field: 'prompt' });
    expect(problem(`{"${'x'.repeat(500)}`)).toMatchObject({ kind: 'extra_field' });
    expect(problem('{"images": [], "images": []}')).toEqual({ kind: 'duplicate_field', field: 'images' });
    // An escaped spelling of "images" is still images.
    expect(read('{"\\u0069mages": ["QUJD"]}')).toEqual(['QUJD']);
  });

  test('values that are not a list of strings are refused as they start', () => {
    for (const body of [
      '{"images": "QUJD"}',
      '{"images": {}}',
      '{"images": [1]}',
      '{"images": [null]}',
      '{"images": ["QUJD", []]}',
      '{"images": true}',
    ]) {
      expect(problem(body)).toEqual({ kind: 'not_a_list' });
    }
    expect(read('{"images": null}')).toEqual([]);
    expect(read('{}')).toEqual([]);
  });

  test('too many images, an image over its length, bad base64: each named', () => {
    expect(problem(`{"images": [${Array(5).fill('"QUJD"').join(',')}]}`)).toEqual({ kind: 'too_many_images', count: 5 });
    expect(problem(`{"images": ["QUJD", "${'A'.repeat(4100)}"]}`)).toEqual({ kind: 'image_too_large', index: 1 });
    expect(problem('{"images": ["QU!D"]}')).toMatchObject({ kind: 'bad_base64', index: 0 });
    expect(problem('{"images": ["QU=D"]}')).toMatchObject({ kind: 'bad_base64', index: 0 });
    expect(problem('{"images": ["data:image/png,QUJD"]}')).toMatchObject({ kind: 'bad_base64', index: 0 });
    expect(problem('{"images": ["data:image/png;base64"]}')).toMatchObject({ kind: 'bad_base64', index: 0 });
    expect(problem('{"images": ["QUJD\\"x"]}')).toMatchObject({ kind: 'bad_base64', index: 0 });
  });

  test('malformed JSON is refused with where it went wrong', () => {
    for (const body of [
      '',
      '[]',
      '{"images": ["QUJD"]',
      '{"images": ["QUJD"]} x',
      '{"images" ["QUJD"]}',
      '{"images": ["QUJD",]}',
      '{,}',
      '{"images": nul}',
    ]) {
      const found = problem(body);
      expect({ body, kind: found?.kind }).toEqual({ body, kind: 'malformed' });
    }
    expect(problem('{"images": ["QUJD"] x')).toEqual({ kind: 'malformed', message: 'expected "," or "}" at byte 21, found "x"' });
  });
});
