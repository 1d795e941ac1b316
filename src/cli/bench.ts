/**
 * `dpemu bench`: the benchmark suite (native-free-bench/, bundled into dist/bench/ by
 * `npm run build`), run as a child process with the arguments as given: its own options and
 * --help, its exit code. A child, not an import: the suite is a program of its own (its option
 * parser, process exit, long synchronous loops that Ctrl-C must end at once).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { EXIT_INTERRUPTED, UserError } from './errors.js';

/** The suite's runner next to this command (dist/cli/main.js → dist/bench/run.js). */
export function benchRunner(): string {
  return fileURLToPath(new URL('../bench/run.js', import.meta.url));
}

export async function runBench(args: string[]): Promise<void> {
  const runner = benchRunner();
  if (!existsSync(runner)) throw new UserError(`the benchmark suite is not built (${runner} is missing): run \`npm run build\``);
  // How it was started, for the suite's usage line and the command it records (npm sets npm_lifecycle_event).
  const as = process.env.npm_lifecycle_event === 'bench' ? 'npm run bench --' : 'dpemu bench';
  const child = spawn(process.execPath, [runner, ...args], { stdio: 'inherit', env: { ...process.env, DPEMU_BENCH_AS: as } });
  // A terminal's Ctrl-C reaches both processes; a signal sent to this one alone is passed on.
  const pass = (sig: NodeJS.Signals): void => {
    child.kill(sig);
  };
  process.on('SIGINT', pass);
  process.on('SIGTERM', pass);
  try {
    const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
    process.exitCode = code ?? (signal === 'SIGINT' ? EXIT_INTERRUPTED : 1);
  } finally {
    process.off('SIGINT', pass);
    process.off('SIGTERM', pass);
  }
}
