import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  buildSchema,
  isEnumType,
  isInputObjectType,
  isInterfaceType,
  isIntrospectionType,
  isObjectType,
  isSpecifiedScalarType,
  Kind,
  parse,
  type GraphQLSchema,
} from 'graphql';
import { describe, expect, it } from 'vitest';
import { createSchema } from '../../src/graphql/server.js';

const SCHEMA_DIR = fileURLToPath(new URL('../../src/graphql/schema/', import.meta.url));

/** Files whose every element must be described; events.graphql joins them once it is done. */
const DESCRIBED_FILES = [
  'analytics.graphql',
  'dead-letters.graphql',
  'events.graphql',
  'integrity.graphql',
  'keys.graphql',
  'subscriptions.graphql',
];

/**
 * Schema coordinates (`Type`, `Type.field`, `Type.field(arg:)`, `Enum.VALUE`) without a
 * description. GraphiQL's docs pane shows nothing for them.
 */
function undescribed(schema: GraphQLSchema): string[] {
  const missing: string[] = [];
  const check = (coordinate: string, description: string | null | undefined) => {
    if (!description?.trim()) missing.push(coordinate);
  };
  for (const type of Object.values(schema.getTypeMap())) {
    if (isIntrospectionType(type) || isSpecifiedScalarType(type)) continue;
    check(type.name, type.description);
    if (isObjectType(type) || isInterfaceType(type)) {
      for (const field of Object.values(type.getFields())) {
        check(`${type.name}.${field.name}`, field.description);
        for (const arg of field.args) check(`${type.name}.${field.name}(${arg.name}:)`, arg.description);
      }
    } else if (isInputObjectType(type)) {
      for (const field of Object.values(type.getFields()))
        check(`${type.name}.${field.name}`, field.description);
    } else if (isEnumType(type)) {
      for (const value of type.getValues()) check(`${type.name}.${value.name}`, value.description);
    }
  }
  return missing;
}

/**
 * Which .graphql file declares each coordinate: a type belongs to the file defining it, a field
 * (with its arguments) or enum value to the file declaring it, `extend type Query` included.
 */
function ownersOf(files: readonly string[]): Map<string, string> {
  const owners = new Map<string, string>();
  for (const file of files) {
    for (const definition of parse(readFileSync(path.join(SCHEMA_DIR, file), 'utf8')).definitions) {
      if (!('name' in definition) || !definition.name) continue;
      const typeName = definition.name.value;
      const isExtension =
        definition.kind === Kind.OBJECT_TYPE_EXTENSION ||
        definition.kind === Kind.INTERFACE_TYPE_EXTENSION ||
        definition.kind === Kind.INPUT_OBJECT_TYPE_EXTENSION ||
        definition.kind === Kind.ENUM_TYPE_EXTENSION;
      if (!isExtension) owners.set(typeName, file);
      if ('fields' in definition) {
        for (const field of definition.fields ?? []) owners.set(`${typeName}.${field.name.value}`, file);
      }
      if ('values' in definition) {
        for (const value of definition.values ?? []) owners.set(`${typeName}.${value.name.value}`, file);
      }
    }
  }
  return owners;
}

/** `Query.events(first:)` → `Query.events`: an argument belongs where its field is declared. */
function ownerOf(owners: Map<string, string>, coordinate: string): string | undefined {
  return owners.get(coordinate.replace(/\(.*\)$/, ''));
}

const schemaFiles = readdirSync(SCHEMA_DIR).filter((file) => file.endsWith('.graphql'));
const owners = ownersOf(schemaFiles);
const missing = undescribed(createSchema());
const missingIn = (file: string) => missing.filter((coordinate) => ownerOf(owners, coordinate) === file);

describe('descriptions on the public schema', () => {
  it('lists every element without a description, whatever its kind', () => {
    const schema = buildSchema(`
      "Described." type Query { "Described." a(x: Int, "Described." y: Int): E, b(i: I): Int }
      enum E { "Described." ONE, TWO }
      input I { z: Int }
    `);
    expect(undescribed(schema).sort()).toEqual(
      ['E', 'E.TWO', 'I', 'I.z', 'Query.a(x:)', 'Query.b', 'Query.b(i:)'].sort(),
    );
  });

  it('attributes every undescribed element to a schema file', () => {
    expect(missing.filter((coordinate) => ownerOf(owners, coordinate) === undefined)).toEqual([]);
  });

  it.each(DESCRIBED_FILES)('describes every type, field, argument and enum value of %s', (file) => {
    expect(schemaFiles).toContain(file);
    expect(missingIn(file)).toEqual([]);
  });
});
