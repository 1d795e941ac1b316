/**
 * Preloaded (`node --import`) into the dpemu processes the suite starts: on exit, writes the
 * process's peak resident set size and CPU time to the file named by DPEMU_BENCH_RSS. It adds
 * one module load and one exit hook, nothing per frame.
 *
 * The peak RSS is VmHWM of /proc/self/status (the high-water mark of this process's own address
 * space). getrusage's ru_maxrss is not used on Linux: it survives fork and execve, so a child
 * started by a large parent (this suite holds a million-entry conntrack table) reports the
 * parent's RSS at the time of the fork.
 */
import { readFileSync, writeFileSync } from 'node:fs';

const out = process.env.DPEMU_BENCH_RSS;
if (out) {
  process.on('exit', () => {
    try {
      const ru = process.resourceUsage();
      let hwmKB = -1;
      try {
        hwmKB = Number(/^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? -1);
      } catch {
        /* not Linux */
      }
      writeFileSync(out, JSON.stringify({ hwmKB, maxRssKB: ru.maxRSS, cpuUs: ru.userCPUTime + ru.systemCPUTime }) + '\n');
    } catch {
      /* the bench reports the figures as unknown */
    }
  });
}
