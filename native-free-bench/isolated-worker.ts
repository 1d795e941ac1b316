/**
 * The worker thread of one isolated micro case (measure.ts runMicroIsolated): builds the case
 * with `buildCase(spec)` of workerData.module, warms it up, then answers each 'round' message
 * with one benchmark.js run. Its first message is the case's description (or the error).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { measureRound, warmCase, type MicroCase, type MicroOptions } from './measure.js';

interface Data {
  module: string;
  spec: unknown;
  timing: Pick<MicroOptions, 'maxTime' | 'minSamples' | 'minTime'>;
  warmMs: number;
}

const port = parentPort!;
const data = workerData as Data;
try {
  const mod = (await import(data.module)) as { buildCase: (spec: unknown) => MicroCase };
  const c = mod.buildCase(data.spec);
  const error = warmCase(c.fn, data.warmMs);
  if (error) {
    port.postMessage({ ok: false, error });
  } else {
    const { fn: _fn, ...meta } = c;
    port.postMessage({ ok: true, meta });
    port.on('message', () => {
      const m = measureRound(c, data.timing);
      port.postMessage('error' in m ? { ok: false, error: m.error } : { ok: true, ...m });
    });
  }
} catch (e) {
  port.postMessage({ ok: false, error: (e as Error).message });
}
