import {
  isInterfaceType,
  isObjectType,
  Kind,
  SchemaMetaFieldDef,
  TypeMetaFieldDef,
  type FieldNode,
  type GraphQLField,
  type GraphQLNamedType,
} from 'graphql';

/** Arguments read as a list field's page size; a variable counts as the largest page. */
const PAGE_ARGUMENTS: ReadonlySet<string> = new Set(['first', 'last', 'limit']);
const LARGEST_PAGE = 1000;

/** Introspection's entry points (`__schema`, `__type`): everything under them is measured apart. */
export function isIntrospectionEntry(name: string): boolean {
  return name === SchemaMetaFieldDef.name || name === TypeMetaFieldDef.name;
}

/** A field a known object or interface type does not have (graphql's FieldsOnCorrectTypeRule reports it). */
export function isUnknownField(parentType: GraphQLNamedType | undefined, name: string): boolean {
  if (!parentType || !(isObjectType(parentType) || isInterfaceType(parentType))) return false;
  return name !== '__typename' && fieldOf(parentType, name) === undefined;
}

export function fieldOf(
  parentType: GraphQLNamedType | undefined,
  name: string,
): GraphQLField<unknown, unknown> | undefined {
  // Introspection's entry points are on no type's field list (valid on the query type only).
  if (name === SchemaMetaFieldDef.name) return SchemaMetaFieldDef;
  if (name === TypeMetaFieldDef.name) return TypeMetaFieldDef;
  if (!parentType || !(isObjectType(parentType) || isInterfaceType(parentType))) return undefined;
  return parentType.getFields()[name];
}

/**
 * How many items a list field may return: its literal page argument, the
 * largest page for a variable, else the argument's default in the schema.
 */
export function pageSize(selection: FieldNode, field: GraphQLField<unknown, unknown> | undefined): number {
  const argument = selection.arguments?.find((candidate) => PAGE_ARGUMENTS.has(candidate.name.value));
  if (argument) {
    if (argument.value.kind === Kind.INT) return Math.max(1, Number(argument.value.value));
    if (argument.value.kind === Kind.VARIABLE) return LARGEST_PAGE;
    return 1;
  }
  const declared = field?.args.find((candidate) => PAGE_ARGUMENTS.has(candidate.name));
  return typeof declared?.defaultValue === 'number' ? Math.max(1, declared.defaultValue) : 1;
}
