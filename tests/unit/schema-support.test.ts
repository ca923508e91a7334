import { describe, expect, it } from 'vitest';
import { supportedSchema } from '../../server/chat/schema-support.js';
import { ServiceError } from '../../server/errors.js';

/*
 * Only schemas whose grammar admits nothing but valid JSON are accepted; every other one is refused
 * with invalid_params naming the exact part, and accepted ones come out in the form node-llama-cpp's
 * grammar builder reads.
 */

function refusal(schema: unknown, where = 'responseFormat.schema'): ServiceError {
  try {
    supportedSchema(schema as Record<string, unknown>, where);
  } catch (error) {
    expect(error).toBeInstanceOf(ServiceError);
    expect((error as ServiceError).code).toBe('invalid_params');
    return error as ServiceError;
  }
  throw new Error(`expected ${JSON.stringify(schema)} to be refused`);
}

describe('supportedSchema: accepted schemas', () => {
  it('keeps the constraints the grammar enforces and drops annotations', () => {
    const schema = {
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      title: 'Person',
      type: 'object',
      description: 'a person',
      properties: {
        name: { type: 'string', minLength: 1, maxLength: 20, examples: ['Ann'] },
        age: { type: 'integer', default: 3 },
        tags: { type: 'array', items: { type: 'string' }, minItems: 1, maxItems: 3 },
        pair: { type: 'array', prefixItems: [{ type: 'number' }, { type: 'boolean' }] },
        kind: { type: 'string', enum: ['a', 'b'] },
        fixed: { const: 7 },
        when: { type: 'string', format: 'date' },
        maybe: { type: ['string', 'null'] },
        extra: { type: 'object', additionalProperties: { type: 'number' }, maxProperties: 2 },
      },
      required: ['name', 'age'],
      additionalProperties: false,
    };
    expect(supportedSchema(schema, 'x')).toEqual({
      type: 'object',
      description: 'a person',
      properties: {
        name: { type: 'string', minLength: 1, maxLength: 20 },
        age: { type: 'integer' },
        tags: { type: 'array', items: { type: 'string' }, minItems: 1, maxItems: 3 },
        pair: { type: 'array', prefixItems: [{ type: 'number' }, { type: 'boolean' }] },
        kind: { enum: ['a', 'b'] },
        fixed: { const: 7 },
        when: { type: 'string', format: 'date' },
        maybe: { type: ['string', 'null'] },
        extra: { type: 'object', additionalProperties: { type: 'number' }, maxProperties: 2 },
      },
      required: ['name', 'age'],
      additionalProperties: false,
    });
  });

  it('reads anyOf as oneOf, definitions as $defs and a lone allOf as its schema', () => {
    const schema = {
      definitions: { Point: { type: 'object', properties: { x: { type: 'number' } } } },
      type: 'object',
      properties: {
        at: { allOf: [{ $ref: '#/definitions/Point' }], description: 'where' },
        id: { anyOf: [{ type: 'string' }, { type: 'null' }], default: null },
      },
    };
    expect(supportedSchema(schema, 'x')).toEqual({
      type: 'object',
      properties: { at: { $ref: '#/$defs/Point', description: 'where' }, id: { oneOf: [{ type: 'string' }, { type: 'null' }] } },
      $defs: { Point: { type: 'object', properties: { x: { type: 'number' } } } },
    });
  });

  it('takes `true` and a schema without constraints as any value', () => {
    expect(supportedSchema({ type: 'object', properties: { a: true, b: { description: 'anything' } } }, 'x')).toEqual({
      type: 'object',
      properties: { a: {}, b: { description: 'anything' } },
    });
  });
});

describe('supportedSchema: refusals name the part', () => {
  it.each<[string, unknown, string, RegExp]>([
    ['a number bound', { type: 'object', properties: { age: { type: 'integer', minimum: 0 } } }, 'responseFormat.schema.properties.age.minimum', /not supported/],
    ['a pattern', { type: 'string', pattern: '^a' }, 'responseFormat.schema.pattern', /not supported/],
    ['an unknown format', { type: 'string', format: 'email' }, 'responseFormat.schema.format', /"email" is not supported/],
    ['a keyword of another type', { type: 'string', items: { type: 'string' } }, 'responseFormat.schema.items', /"type": "array"/],
    ['properties without type object', { properties: { a: { type: 'string' } } }, 'responseFormat.schema.properties', /"type": "object"/],
    ['a type list with object', { type: ['object', 'null'] }, 'responseFormat.schema.type', /may combine only/],
    ['an unknown type', { type: 'date' }, 'responseFormat.schema.type', /must be/],
    ['a required property not listed', { type: 'object', properties: { a: { type: 'string' } }, required: ['b'] }, 'responseFormat.schema.required', /"b"/],
    ['maxProperties below the properties', { type: 'object', properties: { a: { type: 'string' }, b: { type: 'string' } }, maxProperties: 1 }, 'responseFormat.schema.maxProperties', /always all written/],
    ['maxItems below prefixItems', { type: 'array', prefixItems: [{ type: 'string' }, { type: 'string' }], maxItems: 1 }, 'responseFormat.schema.maxItems', /prefixItems/],
    ['minLength above maxLength', { type: 'string', minLength: 5, maxLength: 2 }, 'responseFormat.schema.minLength', /maxLength/],
    ['a $ref out of $defs', { type: 'object', properties: { a: { $ref: 'http://x/y.json' } } }, 'responseFormat.schema.properties.a.$ref', /\$defs/],
    ['a $ref to a missing definition', { $defs: {}, $ref: '#/$defs/Nope' }, 'responseFormat.schema.$ref', /"Nope"/],
    ['nested $defs', { type: 'object', properties: { a: { $defs: {}, type: 'string' } } }, 'responseFormat.schema.properties.a.$defs', /root schema only/],
    ['constraints beside oneOf', { type: 'string', oneOf: [{ type: 'string' }] }, 'responseFormat.schema.type', /combined|not supported/],
    ['allOf of two', { allOf: [{ type: 'string' }, { type: 'string' }] }, 'responseFormat.schema.allOf', /exactly one/],
    ['not', { not: { type: 'string' } }, 'responseFormat.schema.not', /not supported/],
    ['an object in enum', { enum: ['a', { b: 1 }] }, 'responseFormat.schema.enum[1]', /objects and arrays/],
    ['an empty enum', { enum: [] }, 'responseFormat.schema.enum', /non-empty/],
    ['a false schema', { type: 'object', properties: { a: false } }, 'responseFormat.schema.properties.a', /must be a schema/],
    ['a negative count', { type: 'array', minItems: -1 }, 'responseFormat.schema.minItems', /integer/],
    ['more items than a grammar may repeat', { type: 'array', items: { type: 'boolean' }, minItems: 10_000 }, 'responseFormat.schema.minItems', /from 0 to 2000/],
  ])('%s', (_name, schema, part, reason) => {
    const error = refusal(schema);
    expect(error.details?.part).toBe(part);
    expect(error.message).toContain(`"${part}"`);
    expect(error.message).toMatch(reason);
  });

  it('bounds nesting and size', () => {
    let deep: Record<string, unknown> = { type: 'string' };
    for (let level = 0; level < 40; level++) deep = { type: 'array', items: deep };
    expect(refusal(deep).message).toMatch(/deeper than 32/);
    const wide = { type: 'object', properties: Object.fromEntries(Array.from({ length: 2100 }, (_, index) => [`p${index}`, { type: 'string' }])) };
    expect(refusal(wide).message).toMatch(/more than 2000/);
  });

  it('names the tool parameters a refusal is about', () => {
    const error = refusal({ type: 'object', properties: { q: { type: 'string', pattern: 'x' } } }, 'tools[2].parameters');
    expect(error.details?.part).toBe('tools[2].parameters.properties.q.pattern');
  });
});
