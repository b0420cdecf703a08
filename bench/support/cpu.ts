/**
 * CPU time of processes and of the whole machine, read from /proc (Linux), to
 * tell what a measured process spent and who else was busy meanwhile.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** CPU seconds (user + system, all threads) the process has used so far; undefined once it is gone. */
export function cpuSecondsOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[11] and [12] are utime and stime (fields 14 and 15 of stat(5)).
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return undefined;
  }
}

/** CPU seconds of the whole machine, all cores, since boot: busy (all but idle and iowait) and in total. */
export function machineCpuSeconds(): { busy: number; total: number } {
  const fields = readFileSync('/proc/stat', 'utf8')
    .split('\n')[0]!
    .trim()
    .split(/\s+/)
    .slice(1, 9)
    .map(Number);
  // user nice system idle iowait irq softirq steal
  const total = fields.reduce((sum, value) => sum + value, 0);
  return { busy: (total - fields[3]! - fields[4]!) / CLK_TCK, total: total / CLK_TCK };
}

/** The processes whose command name (/proc/<pid>/comm) is `comm`, e.g. redis-server. */
export function pidsNamed(comm: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() === comm) pids.push(Number(entry));
    } catch {
      // The process ended while we looked.
    }
  }
  return pids;
}

/** Resident memory of a process in MiB (VmRSS). */
export function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
}

export type CpuTarget = { label: string; pids: () => number[] };

/**
 * Starts a CPU-time meter over some processes; `stop()` returns each one's
 * share of one core, and `other`: what the rest of the machine used meanwhile.
 * Sampled every 100 ms, so a process that ends before `stop()` (a load
 * generator) still counts up to its last sample.
 */
export function cpuMeter(targets: CpuTarget[]) {
  const startedAt = performance.now();
  const first = new Map<string, Map<number, number>>();
  const last = new Map<string, Map<number, number>>();
  const sample = (into: Map<string, Map<number, number>>, keepOld: boolean) => {
    for (const target of targets) {
      const byPid = into.get(target.label) ?? new Map<number, number>();
      for (const pid of target.pids()) {
        const used = cpuSecondsOf(pid);
        if (used !== undefined) byPid.set(pid, used);
        else if (!keepOld) byPid.delete(pid);
      }
      into.set(target.label, byPid);
    }
  };
  sample(first, false);
  sample(last, true);
  const machineBefore = machineCpuSeconds().busy;
  const timer = setInterval(() => sample(last, true), 100);
  return {
    stop(): Record<string, number> {
      clearInterval(timer);
      sample(last, true);
      const wall = (performance.now() - startedAt) / 1000;
      const result: Record<string, number> = {};
      let tracked = 0;
      for (const target of targets) {
        const start = first.get(target.label)!;
        let used = 0;
        for (const [pid, now] of last.get(target.label)!) used += now - (start.get(pid) ?? 0);
        result[target.label] = wall > 0 ? used / wall : 0;
        tracked += result[target.label]!;
      }
      // Whatever else ran on the machine meanwhile (another test suite, say) skews the figures.
      const machine = wall > 0 ? (machineCpuSeconds().busy - machineBefore) / wall : 0;
      result.other = Math.max(0, machine - tracked);
      return result;
    },
  };
}
export type CpuMeter = ReturnType<typeof cpuMeter>;
