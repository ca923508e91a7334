import { ErrorCode, type JsonSchema } from '../../protocol/index.js';
import { ServiceError } from '../errors.js';

/** Deepest nesting of schemas accepted: deeper ones make grammars no model needs. */
const MAX_DEPTH = 32;
/** Most schema nodes (each property, item, alternative, definition) in one schema. */
const MAX_NODES = 2000;
const SIMPLE_TYPES: ReadonlySet<string> = new Set(['string', 'number', 'integer', 'boolean', 'null']);
const STRING_FORMATS: ReadonlySet<string> = new Set(['date', 'time', 'date-time']);
/** Most items or properties a count may ask for: llama.cpp refuses grammars that repeat a rule more often. */
const MAX_REPEATS = 2000;
/** Longest string length a schema may name. */
const MAX_LENGTH = 1_000_000;
/** Keywords that say nothing about valid values: accepted anywhere and dropped (but `description`, which documents tools). */
const ANNOTATIONS: ReadonlySet<string> = new Set(['title', '$schema', '$id', '$comment', 'examples', 'default', 'deprecated', 'readOnly', 'writeOnly']);
/** The keywords of each kind of schema besides `type`, `description` and the annotations. */
const KIND_KEYWORDS = {
  object: new Set(['properties', 'required', 'additionalProperties', 'minProperties', 'maxProperties']),
  array: new Set(['items', 'prefixItems', 'minItems', 'maxItems']),
  string: new Set(['minLength', 'maxLength', 'format']),
  simple: new Set<string>(),
} as const;
type Kind = keyof typeof KIND_KEYWORDS;

/**
 * Checks that a JSON schema lies in the subset node-llama-cpp turns into a grammar that only
 * admits valid JSON, and returns it in the form that grammar builder reads (`anyOf` as `oneOf`,
 * `definitions` as `$defs`, annotations dropped). Anything else is refused with invalid_params
 * naming the part, `where` first (`responseFormat.schema.properties.age.minimum`), so a reply that
 * passed the grammar always validates against the schema as sent.
 */
export function supportedSchema(schema: JsonSchema, where: string): JsonSchema {
  return new SchemaReader(schema, where).read();
}

class SchemaReader {
  private nodes = 0;
  private readonly defs: Record<string, unknown>;

  constructor(private readonly root: JsonSchema, private readonly where: string) {
    const defs = root.$defs ?? root.definitions;
    if (root.$defs !== undefined && root.definitions !== undefined) this.refuse(where, 'holds both "$defs" and "definitions": use "$defs"');
    if (defs !== undefined && !isMap(defs)) this.refuse(`${where}.${root.$defs !== undefined ? '$defs' : 'definitions'}`, 'must be a map of schemas');
    this.defs = (defs as Record<string, unknown> | undefined) ?? {};
  }

  read(): JsonSchema {
    const { $defs: _defs, definitions: _definitions, ...rest } = this.root;
    const schema = this.node(rest, this.where, 0);
    const names = Object.keys(this.defs);
    if (names.length === 0) return schema;
    const defs: Record<string, JsonSchema> = {};
    for (const name of names) defs[name] = this.node(this.defs[name], `${this.where}.$defs.${name}`, 1);
    return { ...schema, $defs: defs };
  }

  private node(value: unknown, at: string, depth: number): JsonSchema {
    if (++this.nodes > MAX_NODES) this.refuse(this.where, `has more than ${MAX_NODES} schemas in it`);
    if (depth > MAX_DEPTH) this.refuse(at, `nests deeper than ${MAX_DEPTH} levels`);
    // `true` admits any value: the grammar writes null, which it admits.
    if (value === true) return {};
    if (!isMap(value)) this.refuse(at, 'must be a schema (a map)');
    const schema = value as JsonSchema;
    for (const keyword of ['$defs', 'definitions']) {
      if (schema[keyword] !== undefined) this.refuse(`${at}.${keyword}`, 'is supported on the root schema only');
    }
    if (schema.allOf !== undefined) return this.allOf(schema, at, depth);
    if (schema.$ref !== undefined) return this.ref(schema, at);
    const alternatives = schema.oneOf ?? schema.anyOf;
    if (alternatives !== undefined) return this.alternatives(schema, at, depth);
    if (schema.const !== undefined) return this.literal(schema, at, 'const');
    if (schema.enum !== undefined) return this.literal(schema, at, 'enum');
    return this.typed(schema, at, depth);
  }

  /** `allOf` of one schema (how some generators attach a description to a `$ref`) is that schema. */
  private allOf(schema: JsonSchema, at: string, depth: number): JsonSchema {
    const parts = schema.allOf;
    if (!Array.isArray(parts) || parts.length !== 1) this.refuse(`${at}.allOf`, 'is supported with exactly one schema only');
    this.onlyAnnotations(schema, at, ['allOf']);
    const inner = this.node((parts as unknown[])[0], `${at}.allOf[0]`, depth + 1);
    return typeof schema.description === 'string' && inner.description === undefined ? { ...inner, description: schema.description } : inner;
  }

  private ref(schema: JsonSchema, at: string): JsonSchema {
    const ref = schema.$ref;
    const match = typeof ref === 'string' ? /^#\/(?:\$defs|definitions)\/([^/]+)$/.exec(ref) : null;
    if (!match) this.refuse(`${at}.$ref`, 'must point into the root schema\'s "$defs" ("#/$defs/<name>")');
    const name = match![1]!;
    if (!Object.hasOwn(this.defs, name)) this.refuse(`${at}.$ref`, `names "${name}", which "$defs" does not define`);
    this.onlyAnnotations(schema, at, ['$ref']);
    return withDescription({ $ref: `#/$defs/${name}` }, schema);
  }

  private alternatives(schema: JsonSchema, at: string, depth: number): JsonSchema {
    const keyword = schema.oneOf !== undefined ? 'oneOf' : 'anyOf';
    if (schema.oneOf !== undefined && schema.anyOf !== undefined) this.refuse(at, 'holds both "oneOf" and "anyOf"');
    const list = schema[keyword];
    if (!Array.isArray(list) || list.length === 0) this.refuse(`${at}.${keyword}`, 'must be a non-empty array of schemas');
    // Other constraints beside the alternatives would be ignored by the grammar.
    this.onlyAnnotations(schema, at, [keyword]);
    const oneOf = (list as unknown[]).map((item, index) => this.node(item, `${at}.${keyword}[${index}]`, depth + 1));
    return withDescription({ oneOf }, schema);
  }

  private literal(schema: JsonSchema, at: string, keyword: 'const' | 'enum'): JsonSchema {
    const values = keyword === 'const' ? [schema.const] : schema.enum;
    if (!Array.isArray(values) || values.length === 0) this.refuse(`${at}.enum`, 'must be a non-empty array');
    (values as unknown[]).forEach((item, index) => {
      if (item !== null && !['string', 'number', 'boolean'].includes(typeof item)) {
        this.refuse(keyword === 'const' ? `${at}.const` : `${at}.enum[${index}]`, 'must be a string, number, boolean or null (objects and arrays are not supported)');
      }
    });
    // A `type` beside the values only restates them.
    this.onlyAnnotations(schema, at, [keyword, 'type']);
    return withDescription(keyword === 'const' ? { const: schema.const } : { enum: [...(values as unknown[])] }, schema);
  }

  private typed(schema: JsonSchema, at: string, depth: number): JsonSchema {
    const type = schema.type;
    let kind: Kind;
    if (type === undefined) {
      // No type and no constraint admits any value: the grammar writes null, which it admits.
      this.onlyAnnotations(schema, at, []);
      return withDescription({}, schema);
    }
    if (Array.isArray(type)) {
      if (type.length === 0 || !type.every((item) => typeof item === 'string' && SIMPLE_TYPES.has(item))) {
        this.refuse(`${at}.type`, 'as a list may combine only "string", "number", "integer", "boolean" and "null"');
      }
      kind = 'simple';
    } else if (type === 'object' || type === 'array') {
      kind = type;
    } else if (type === 'string') {
      kind = 'string';
    } else if (typeof type === 'string' && SIMPLE_TYPES.has(type)) {
      kind = 'simple';
    } else {
      this.refuse(`${at}.type`, 'must be "string", "number", "integer", "boolean", "null", "object", "array" or a list of the first five');
    }
    this.onlyAnnotations(schema, at, ['type', ...KIND_KEYWORDS[kind!]]);
    const out: JsonSchema = withDescription({ type: Array.isArray(type) ? [...type] : type }, schema);
    if (kind! === 'object') this.object(schema, out, at, depth);
    if (kind! === 'array') this.array(schema, out, at, depth);
    if (kind! === 'string') this.string(schema, out, at);
    return out;
  }

  private object(schema: JsonSchema, out: JsonSchema, at: string, depth: number): void {
    const properties = schema.properties;
    let names: string[] = [];
    if (properties !== undefined) {
      if (!isMap(properties)) this.refuse(`${at}.properties`, 'must be a map of schemas');
      names = Object.keys(properties as object);
      const read: Record<string, JsonSchema> = {};
      for (const name of names) read[name] = this.node((properties as Record<string, unknown>)[name], `${at}.properties.${name}`, depth + 1);
      out.properties = read;
    }
    if (schema.required !== undefined) {
      const required = schema.required;
      if (!Array.isArray(required) || !required.every((name) => typeof name === 'string')) this.refuse(`${at}.required`, 'must be an array of property names');
      // Every listed property is always written; a required one that is not listed never would be.
      const missing = (required as string[]).find((name) => !names.includes(name));
      if (missing !== undefined) this.refuse(`${at}.required`, `names "${missing}", which "properties" does not list (every listed property is always written)`);
      out.required = [...(required as string[])];
    }
    const additional = schema.additionalProperties;
    if (additional !== undefined) {
      if (additional === false || additional === true) out.additionalProperties = additional;
      else out.additionalProperties = this.node(additional, `${at}.additionalProperties`, depth + 1);
    }
    const min = this.count(schema, 'minProperties', at, MAX_REPEATS);
    const max = this.count(schema, 'maxProperties', at, MAX_REPEATS);
    if (max !== undefined && max < names.length) this.refuse(`${at}.maxProperties`, `is below the ${names.length} listed properties, which are always all written`);
    if (min !== undefined && max !== undefined && min > max) this.refuse(`${at}.minProperties`, 'is above "maxProperties"');
    if (min !== undefined && min > names.length && (additional === undefined || additional === false)) {
      this.refuse(`${at}.minProperties`, 'asks for more properties than "properties" lists and "additionalProperties" allows');
    }
    if (min !== undefined) out.minProperties = min;
    if (max !== undefined) out.maxProperties = max;
  }

  private array(schema: JsonSchema, out: JsonSchema, at: string, depth: number): void {
    if (schema.items !== undefined) out.items = this.node(schema.items, `${at}.items`, depth + 1);
    let prefix = 0;
    if (schema.prefixItems !== undefined) {
      if (!Array.isArray(schema.prefixItems)) this.refuse(`${at}.prefixItems`, 'must be an array of schemas');
      const items = schema.prefixItems as unknown[];
      prefix = items.length;
      out.prefixItems = items.map((item, index) => this.node(item, `${at}.prefixItems[${index}]`, depth + 1));
    }
    const min = this.count(schema, 'minItems', at, MAX_REPEATS);
    const max = this.count(schema, 'maxItems', at, MAX_REPEATS);
    if (max !== undefined && max < prefix) this.refuse(`${at}.maxItems`, `is below the ${prefix} "prefixItems", which are always all written`);
    if (min !== undefined && max !== undefined && min > max) this.refuse(`${at}.minItems`, 'is above "maxItems"');
    if (min !== undefined) out.minItems = min;
    if (max !== undefined) out.maxItems = max;
  }

  private string(schema: JsonSchema, out: JsonSchema, at: string): void {
    const min = this.count(schema, 'minLength', at, MAX_LENGTH);
    const max = this.count(schema, 'maxLength', at, MAX_LENGTH);
    if (min !== undefined && max !== undefined && min > max) this.refuse(`${at}.minLength`, 'is above "maxLength"');
    if (schema.format !== undefined) {
      if (typeof schema.format !== 'string' || !STRING_FORMATS.has(schema.format)) {
        this.refuse(`${at}.format`, `"${String(schema.format).slice(0, 32)}" is not supported (supported: date, time, date-time)`);
      }
      if (min !== undefined || max !== undefined) this.refuse(`${at}.format`, 'cannot be combined with "minLength" or "maxLength"');
      out.format = schema.format;
      return;
    }
    if (min !== undefined) out.minLength = min;
    if (max !== undefined) out.maxLength = max;
  }

  private count(schema: JsonSchema, keyword: string, at: string, max: number): number | undefined {
    const value = schema[keyword];
    if (value === undefined) return undefined;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) this.refuse(`${at}.${keyword}`, `must be an integer from 0 to ${max}`);
    return value as number;
  }

  /** Refuses the first keyword of `schema` that is neither in `allowed`, `description` nor an annotation. */
  private onlyAnnotations(schema: JsonSchema, at: string, allowed: readonly string[]): void {
    for (const keyword of Object.keys(schema)) {
      if (keyword === 'description' || ANNOTATIONS.has(keyword) || allowed.includes(keyword)) continue;
      this.refuse(`${at}.${keyword}`, unsupportedReason(keyword, schema));
    }
  }

  private refuse(at: string, reason: string): never {
    throw new ServiceError(ErrorCode.invalidParams, `"${at}" ${reason}`, { details: { part: at } });
  }
}

function unsupportedReason(keyword: string, schema: JsonSchema): string {
  const kinds = Object.entries(KIND_KEYWORDS).filter(([, keywords]) => keywords.has(keyword)).map(([kind]) => kind);
  if (kinds.length > 0 && schema.type !== kinds[0]) return `belongs to "type": "${kinds[0]}" schemas`;
  if (['oneOf', 'anyOf', '$ref', 'allOf', 'enum', 'const'].includes(keyword)) return 'cannot be combined with the other constraints of this schema';
  return 'is not supported in a grammar-constrained reply';
}

function withDescription(out: JsonSchema, from: JsonSchema): JsonSchema {
  return typeof from.description === 'string' ? { ...out, description: from.description } : out;
}

function isMap(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
