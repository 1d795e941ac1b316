/**
 * Preloaded (`node --import`) into the dpemu processes the suite starts: on exit, writes the
 * process's peak resident set size (getrusage ru_maxrss) to the file named by DPEMU_BENCH_RSS.
 * It adds one module load and one exit hook, nothing per frame.
 */
import { writeFileSync } from 'node:fs';

const out = process.env.DPEMU_BENCH_RSS;
if (out) {
  process.on('exit', () => {
    try {
      writeFileSync(out, JSON.stringify({ maxRssKB: process.resourceUsage().maxRSS }) + '\n');
    } catch {
      /* the bench reports the RSS as unknown */
    }
  });
}
