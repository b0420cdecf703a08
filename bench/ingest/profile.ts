/** --profile: serve and worker run under `node --cpu-prof`, and where their CPU time went, summarized. */
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fmtInt, indent, pct } from '../support/format.js';
import { ROOT } from '../support/processes.js';
import { markdownTable } from '../support/table.js';
import type { Options } from './options.js';
import { rel } from './resources.js';

export interface ProfileSummary {
  files: string[];
  totalMs: number;
  topSelf: Array<{ function: string; where: string; selfMs: number; share: number }>;
  byModule: Array<{ module: string; selfMs: number; share: number }>;
  srcInclusive: Array<{ function: string; where: string; totalMs: number; share: number }>;
}

export function profileFlags(options: Options, dir: string): string[] {
  if (!options.profile) return [];
  mkdirSync(dir, { recursive: true });
  return ['--cpu-prof', `--cpu-prof-dir=${dir}`];
}

interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

function moduleOf(url: string, functionName: string): string {
  if (!url) return functionName.startsWith('(') ? functionName : '(native)';
  if (url.startsWith('node:')) return url.split('/')[0]!.replace(/^node:internal$/, 'node:internal');
  const file = url.replace(/^file:\/\//, '');
  const nm = file.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const parts = file.slice(nm + '/node_modules/'.length).split('/');
    return parts[0]!.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!;
  }
  return file.startsWith(ROOT) ? rel(file) : file;
}

export function summarizeProfileDir(dir: string): ProfileSummary | undefined {
  if (!existsSync(dir)) return undefined;
  const files = readdirSync(dir)
    .filter((file) => file.endsWith('.cpuprofile'))
    .map((file) => path.join(dir, file))
    .sort((a, b) => statSync(b).size - statSync(a).size);
  const file = files[0];
  if (!file) return undefined;
  const profile = JSON.parse(readFileSync(file, 'utf8')) as {
    nodes: CpuProfileNode[];
    samples: number[];
    timeDeltas: number[];
  };
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, index) => {
    const delta = profile.timeDeltas[index + 1] ?? profile.timeDeltas[index] ?? 0;
    selfUs.set(id, (selfUs.get(id) ?? 0) + Math.max(0, delta));
  });
  // Inclusive time per node, children first.
  const inclusiveUs = new Map<number, number>();
  const inclusive = (id: number): number => {
    const cached = inclusiveUs.get(id);
    if (cached !== undefined) return cached;
    const node = byId.get(id)!;
    let total = selfUs.get(id) ?? 0;
    for (const child of node.children ?? []) total += inclusive(child);
    inclusiveUs.set(id, total);
    return total;
  };
  const root = profile.nodes[0]!;
  const totalUs = inclusive(root.id);
  const idleUs = [...byId.values()]
    .filter((node) => node.callFrame.functionName === '(idle)')
    .reduce((sum, node) => sum + (selfUs.get(node.id) ?? 0), 0);
  const busyUs = totalUs - idleUs;

  const key = (node: CpuProfileNode) => {
    const where = node.callFrame.url
      ? `${moduleOf(node.callFrame.url, '')}:${node.callFrame.lineNumber + 1}`
      : '';
    return `${node.callFrame.functionName || '(anonymous)'}\u0000${where}`;
  };
  const selfByFunction = new Map<string, number>();
  const selfByModule = new Map<string, number>();
  const srcTotal = new Map<string, number>();
  // For inclusive time, count a function once per stack (recursion would double it).
  const walk = (id: number, onStack: Set<string>) => {
    const node = byId.get(id)!;
    const name = key(node);
    const self = selfUs.get(id) ?? 0;
    if (node.callFrame.functionName !== '(idle)') {
      selfByFunction.set(name, (selfByFunction.get(name) ?? 0) + self);
      const module = moduleOf(node.callFrame.url, node.callFrame.functionName);
      selfByModule.set(module, (selfByModule.get(module) ?? 0) + self);
    }
    let added = false;
    if (node.callFrame.url.includes(`${ROOT}/src/`) && !onStack.has(name)) {
      srcTotal.set(name, (srcTotal.get(name) ?? 0) + inclusive(id));
      onStack.add(name);
      added = true;
    }
    for (const child of node.children ?? []) walk(child, onStack);
    if (added) onStack.delete(name);
  };
  walk(root.id, new Set());
  const split = (name: string) => {
    const [fn, where] = name.split('\u0000');
    return { function: fn!, where: where ?? '' };
  };
  const top = <T>(map: Map<string, number>, n: number, shape: (name: string, us: number) => T): T[] =>
    [...map]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([name, us]) => shape(name, us));
  return {
    files: files.map(rel),
    totalMs: busyUs / 1000,
    topSelf: top(selfByFunction, 25, (name, us) => ({
      ...split(name),
      selfMs: us / 1000,
      share: us / busyUs,
    })),
    byModule: top(selfByModule, 15, (module, us) => ({ module, selfMs: us / 1000, share: us / busyUs })),
    srcInclusive: top(srcTotal, 20, (name, us) => ({
      ...split(name),
      totalMs: us / 1000,
      share: us / busyUs,
    })),
  };
}

export function renderProfile(title: string, profile: ProfileSummary): string {
  const table = (heading: string, header: string[], rows: string[][]) => [
    `  ${heading}:`,
    indent(markdownTable(header, rows), 4),
  ];
  return [
    `${title} — busy CPU ${fmtInt(profile.totalMs)} ms (${profile.files[0] ?? ''})`,
    ...table(
      'self time by module',
      ['module', 'self ms', 'share'],
      profile.byModule.map((row) => [row.module, fmtInt(row.selfMs), pct(row.share)]),
    ),
    ...table(
      'top functions by self time',
      ['function', 'where', 'self ms', 'share'],
      profile.topSelf.map((row) => [row.function, row.where, fmtInt(row.selfMs), pct(row.share)]),
    ),
    ...table(
      'src/ functions by inclusive time',
      ['function', 'where', 'total ms', 'share'],
      profile.srcInclusive.map((row) => [row.function, row.where, fmtInt(row.totalMs), pct(row.share)]),
    ),
  ].join('\n');
}
