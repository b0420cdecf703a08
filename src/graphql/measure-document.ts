import {
  getNamedType,
  isCompositeType,
  Kind,
  type ArgumentNode,
  type DirectiveNode,
  type DocumentNode,
  type FragmentDefinitionNode,
  type GraphQLNamedType,
  type GraphQLSchema,
  type OperationDefinitionNode,
  type SelectionSetNode,
  type ValueNode,
} from 'graphql';
import type { QueryLimits } from './query-limits.js';
import { fieldOf, isIntrospectionEntry, isUnknownField, pageSize } from './schema-fields.js';

/** The shape limits a document is measured against: all but those checked on its text or by graphql. */
export type ShapeLimits = Omit<QueryLimits, 'maxQueryLength' | 'maxNesting' | 'maxErrors'>;

/** Which limit a document went over: the name of its QueryLimits property. */
export type LimitName = keyof ShapeLimits | 'maxNesting';

export interface Refusal {
  limit: LimitName;
  message: string;
}

export interface Measurement {
  /** Set when the document goes over a limit; measuring stopped there. */
  refusal?: Refusal;
  /**
   * Nodes looked at: selections in both passes; directives, variable
   * definitions and argument values in the first. At most {@link maxWork}
   * whatever the document: the measure of what refusing costs.
   */
  work: number;
}

/**
 * The most nodes measuring any document looks at: each count stops one past
 * its limit, directives and variable definitions are looked at only once
 * their number is known to be within it, and the second pass's selection
 * count stops one past maxSelections whatever fragments expand to.
 */
export function maxWork(limits: ShapeLimits): number {
  return 2 * (limits.maxSelections + 1) + limits.maxDirectives + limits.maxVariables + limits.maxValues + 1;
}

/** Thrown to leave the walk at the first limit passed: the walk may be deep in fragments. */
class LimitPassed {
  constructor(readonly refusal: Refusal) {}
}

/** One response path (the same names from the root): how often a selection lands on it. */
interface PathNode {
  name: string;
  parent: PathNode | undefined;
  selected: number;
  children: Map<string, PathNode> | undefined;
}

/** What one operation (or a fragment no operation reaches) adds up to. */
interface RootTally {
  aliases: number;
  cost: number;
}

/**
 * Measures a document against the shape limits in two passes, each linear and
 * stopping at the first limit passed:
 *
 * 1. a pre-count over the text's own selections and directives (no fragment
 *    expansion), so a document that is simply too big ends here;
 * 2. a walk of each operation with fragments expanded where they are spread
 *    (then of any fragment no operation reaches, which validation also
 *    visits), counting depth, aliases, cost, selections and how many
 *    selections land on each response path. Under introspection's entry
 *    fields (`__schema`, `__type`), depth counts against maxIntrospectionDepth
 *    instead of maxDepth, and nothing adds cost: its lists have no pages, and
 *    graphql's MaxIntrospectionDepthRule (in its specifiedRules) bounds how
 *    they nest. The selection count is document-wide, so expansion
 *    (fragments spread many times, or chains that double at each step) ends
 *    within `maxSelections` steps.
 *
 * The repeat limit bounds graphql-js's OverlappingFieldsCanBeMergedRule, which
 * compares every pair of selections sharing a response path: with at most R
 * on any path and S in all, it compares fewer than R × S pairs.
 */
export function measureDocument(
  document: DocumentNode,
  schema: GraphQLSchema,
  limits: ShapeLimits,
): Measurement {
  const counter = { work: 0 };
  try {
    preCount(document, limits, counter);
    expandedCount(document, schema, limits, counter);
    return { work: counter.work };
  } catch (caught) {
    if (caught instanceof LimitPassed) return { refusal: caught.refusal, work: counter.work };
    throw caught;
  }
}

function tooManySelections(limits: ShapeLimits): LimitPassed {
  return new LimitPassed(selectionsRefusal(limits.maxSelections));
}

/** The refusal for more than `maxSelections` selections, also given before parsing (scan-query-text.ts). */
export function selectionsRefusal(maxSelections: number): Refusal {
  return {
    limit: 'maxSelections',
    message:
      `Document has more than ${maxSelections} selections (fields, fragment spreads and inline ` +
      `fragments, a fragment counted at each spread); the limit is ${maxSelections}.`,
  };
}

/** What pass 1 counts, with the limit each count is held to and how a refusal names it. */
const WRITTEN = {
  selections: { limit: 'maxSelections', what: 'selections (fields, fragment spreads, inline fragments)' },
  directives: { limit: 'maxDirectives', what: 'directives' },
  arguments: { limit: 'maxArguments', what: 'arguments (of fields and directives)' },
  values: { limit: 'maxValues', what: 'argument values (each list item and object field counted)' },
  variables: { limit: 'maxVariables', what: 'variable definitions' },
  operations: { limit: 'maxOperations', what: 'operations' },
  fragments: { limit: 'maxFragments', what: 'fragment definitions' },
} as const satisfies Record<string, { limit: LimitName; what: string }>;

/**
 * Pass 1: what the text itself holds. Besides selections, the counts bound
 * what graphql's rules do per node and per definition: each argument value is
 * visited by every rule in parallel (about a microsecond each); the three
 * variable rules walk each operation and fragment anew; and one error names
 * every duplicate of an argument or variable (or every fragment of a cycle),
 * each error's locations scanning the text, so thousands of duplicates cost
 * quadratic time.
 */
function preCount(document: DocumentNode, limits: ShapeLimits, counter: { work: number }): void {
  const counts = {
    selections: 0,
    directives: 0,
    arguments: 0,
    values: 0,
    variables: 0,
    operations: 0,
    fragments: 0,
  };
  const add = (kind: keyof typeof counts, count: number | undefined) => {
    if (!count) return;
    counts[kind] += count;
    const { limit, what } = WRITTEN[kind];
    if (counts[kind] > limits[limit]) {
      if (kind === 'selections') throw tooManySelections(limits);
      throw new LimitPassed({
        limit,
        message: `Document has more than ${limits[limit]} ${what}; the limit is ${limits[limit]}.`,
      });
    }
  };
  const countValue = (value: ValueNode): void => {
    counter.work += 1;
    add('values', 1);
    if (value.kind === Kind.LIST) for (const item of value.values) countValue(item);
    else if (value.kind === Kind.OBJECT) for (const field of value.fields) countValue(field.value);
  };
  const addArguments = (list: readonly ArgumentNode[] | undefined) => {
    add('arguments', list?.length);
    for (const argument of list ?? []) countValue(argument.value);
  };
  const addDirectives = (directives: readonly DirectiveNode[] | undefined) => {
    add('directives', directives?.length);
    for (const directive of directives ?? []) {
      counter.work += 1;
      addArguments(directive.arguments);
    }
  };
  const countSet = (set: SelectionSetNode): void => {
    for (const selection of set.selections) {
      counter.work += 1;
      add('selections', 1);
      addDirectives(selection.directives);
      if (selection.kind === Kind.FRAGMENT_SPREAD) continue;
      if (selection.kind === Kind.FIELD) addArguments(selection.arguments);
      if (selection.selectionSet) countSet(selection.selectionSet);
    }
  };
  for (const definition of document.definitions) {
    if (definition.kind === Kind.OPERATION_DEFINITION) {
      add('operations', 1);
      addDirectives(definition.directives);
      add('variables', definition.variableDefinitions?.length);
      for (const variable of definition.variableDefinitions ?? []) {
        counter.work += 1;
        addDirectives(variable.directives);
        if (variable.defaultValue) countValue(variable.defaultValue);
      }
    } else if (definition.kind === Kind.FRAGMENT_DEFINITION) {
      add('fragments', 1);
      addDirectives(definition.directives);
    } else {
      continue; // not executable: ExecutableDefinitionsRule refuses it
    }
    countSet(definition.selectionSet);
  }
}

/** Pass 2: operations with their fragments expanded, then the fragments left unreached. */
function expandedCount(
  document: DocumentNode,
  schema: GraphQLSchema,
  limits: ShapeLimits,
  counter: { work: number },
): void {
  const fragments = new Map<string, FragmentDefinitionNode>();
  const operations: OperationDefinitionNode[] = [];
  for (const definition of document.definitions) {
    if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
    else if (definition.kind === Kind.OPERATION_DEFINITION) operations.push(definition);
  }
  const reached = new Set<string>();
  const queryType = schema.getQueryType() ?? undefined;
  let selections = 0;
  let unknownFields = 0;

  const walk = (
    set: SelectionSetNode,
    parentType: GraphQLNamedType | undefined,
    depth: number,
    multiplier: number,
    path: PathNode,
    visiting: Set<string>,
    tally: RootTally,
    introspecting = false,
  ): void => {
    for (const selection of set.selections) {
      counter.work += 1;
      selections += 1;
      if (selections > limits.maxSelections) throw tooManySelections(limits);
      if (selection.kind === Kind.FIELD) {
        if (isUnknownField(parentType, selection.name.value) && ++unknownFields > limits.maxUnknownFields) {
          // Distinct unknown names escape maxRepeats; graphql's rules would collect every one of them.
          throw new LimitPassed({
            limit: 'maxUnknownFields',
            message: `Query selects more than ${limits.maxUnknownFields} fields the schema does not have; the limit is ${limits.maxUnknownFields}.`,
          });
        }
        const at = landOn(path, (selection.alias ?? selection.name).value, limits);
        // Under `__schema` and `__type` (valid on the query type only), depth has its own limit.
        const inIntrospection =
          introspecting || (parentType === queryType && isIntrospectionEntry(selection.name.value));
        if (inIntrospection && depth > limits.maxIntrospectionDepth) {
          throw new LimitPassed({
            limit: 'maxIntrospectionDepth',
            message:
              `Introspection depth exceeds the limit of ${limits.maxIntrospectionDepth}: ` +
              `${pathText(at)} is ${depth} levels deep.`,
          });
        }
        if (!inIntrospection && depth > limits.maxDepth) {
          throw new LimitPassed({
            limit: 'maxDepth',
            message: `Query depth exceeds the limit of ${limits.maxDepth}: ${pathText(at)} is ${depth} levels deep.`,
          });
        }
        // Aliases count everywhere: they are how one document would ask for the schema many times over.
        if (selection.alias && ++tally.aliases > limits.maxAliases) {
          throw new LimitPassed({
            limit: 'maxAliases',
            message: `Query uses more than ${limits.maxAliases} aliases; the limit is ${limits.maxAliases}.`,
          });
        }
        if (!inIntrospection) tally.cost += multiplier;
        if (tally.cost > limits.maxCost) {
          throw new LimitPassed({
            limit: 'maxCost',
            message:
              `Query cost exceeds the limit of ${limits.maxCost}: at least ${tally.cost} by ${pathText(at)} ` +
              '(each field costs 1 times the page sizes of the lists around it).',
          });
        }
        if (selection.selectionSet) {
          const field = fieldOf(parentType, selection.name.value);
          const type = field ? getNamedType(field.type) : undefined;
          walk(
            selection.selectionSet,
            type && isCompositeType(type) ? type : undefined,
            depth + 1,
            inIntrospection ? multiplier : multiplier * pageSize(selection, field),
            at,
            visiting,
            tally,
            inIntrospection,
          );
        }
      } else if (selection.kind === Kind.INLINE_FRAGMENT) {
        const type = selection.typeCondition
          ? schema.getType(selection.typeCondition.name.value)
          : parentType;
        walk(
          selection.selectionSet,
          type ?? undefined,
          depth,
          multiplier,
          path,
          visiting,
          tally,
          introspecting,
        );
      } else {
        const name = selection.name.value;
        const fragment = fragments.get(name);
        // Unknown fragments and cycles are validation errors of their own (KnownFragmentNames, NoFragmentCycles).
        if (!fragment || visiting.has(name)) continue;
        reached.add(name);
        visiting.add(name);
        const type = schema.getType(fragment.typeCondition.name.value) ?? undefined;
        walk(fragment.selectionSet, type, depth, multiplier, path, visiting, tally, introspecting);
        visiting.delete(name);
      }
    }
  };

  for (const operation of operations) {
    const root = schema.getRootType(operation.operation) ?? undefined;
    walk(operation.selectionSet, root, 1, 1, newPath(), new Set(), { aliases: 0, cost: 0 });
  }
  for (const [name, fragment] of fragments) {
    if (reached.has(name)) continue;
    reached.add(name);
    const type = schema.getType(fragment.typeCondition.name.value) ?? undefined;
    walk(fragment.selectionSet, type, 1, 1, newPath(), new Set([name]), { aliases: 0, cost: 0 });
  }
}

function newPath(): PathNode {
  return { name: '', parent: undefined, selected: 0, children: undefined };
}

/** Counts one more selection of `name` under `path`; past `maxRepeats`, the document is refused. */
function landOn(path: PathNode, name: string, limits: ShapeLimits): PathNode {
  path.children ??= new Map();
  let node = path.children.get(name);
  if (!node) {
    node = { name, parent: path, selected: 0, children: undefined };
    path.children.set(name, node);
  }
  node.selected += 1;
  if (node.selected > limits.maxRepeats) {
    throw new LimitPassed({
      limit: 'maxRepeats',
      message:
        `${pathText(node)} is selected more than ${limits.maxRepeats} times (repeated fields, or fragments ` +
        `merging there); the limit is ${limits.maxRepeats} selections of one response path.`,
    });
  }
  return node;
}

function pathText(node: PathNode): string {
  const names: string[] = [];
  for (let at: PathNode | undefined = node; at?.parent; at = at.parent) names.push(at.name);
  return `\`${names.reverse().join('.')}\``;
}
