// Bundles the compiled CLI (dist/cli/main.js, from tsc) and the worker threads' entry
// (dist/engine/worker.js) into one file each, in place, with their npm dependencies.
//
// Why: Node loads an ES module graph file by file. dpemu's ~50 modules plus yaml's ~80 and
// commander cost ~120 ms of every start, more than a whole 100,000-frame replay; one file per
// entry takes ~55 ms less (measured: a 1-frame `dpemu replay --node` went from 201 to 146 ms,
// 307 to 228 ms with --workers 2, medians of 15 and 11 interleaved runs; Node itself starts in
// ~100 ms). The other files of dist/ stay
// as tsc wrote them: they are the library's API (dist/index.js) and what the tests import.
//
// piscina stays outside (loaded with import() only when a run uses worker threads).
import { build } from 'esbuild';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

// CommonJS dependencies (commander, yaml, cli-progress) call require() for Node's built-ins; an
// ES module has no require, so the bundle gets one (under a name nothing else uses).
const banner = "import { createRequire as __dpemuRequire } from 'node:module'; const require = __dpemuRequire(import.meta.url);";

for (const entry of ['dist/cli/main.js', 'dist/engine/worker.js']) {
  // Bundling a bundle would declare `require` twice: run tsc first (npm run build does).
  if (readFileSync(new URL(`../${entry}`, import.meta.url), 'utf8').includes('__dpemuRequire')) {
    throw new Error(`${entry} is already a bundle: run \`npm run build\` (tsc, then this script)`);
  }
  await build({
    absWorkingDir: root,
    entryPoints: [entry],
    outfile: entry,
    allowOverwrite: true,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external: ['piscina'],
    banner: { js: banner },
    // Maps back to the TypeScript sources through tsc's maps (node --enable-source-maps).
    sourcemap: true,
    logLevel: 'warning',
  });
}

// The benchmark suite (`dpemu bench`, `npm run bench`), from its TypeScript sources, into
// dist/bench/: the runner and the files it starts by URL next to it (the isolated worker, the
// node cases that worker imports, the RSS probe preloaded into dpemu children). benchmark.js
// stays a package import (CommonJS, resolved from node_modules at run time).
await build({
  absWorkingDir: root,
  entryPoints: ['native-free-bench/run.ts', 'native-free-bench/isolated-worker.ts', 'native-free-bench/node-cases.ts', 'native-free-bench/rss-probe.ts'],
  outdir: 'dist/bench',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: ['piscina', 'benchmark'],
  banner: { js: banner },
  sourcemap: true,
  logLevel: 'warning',
});
