import { captureInfo } from '../engine/info.js';
import { EXIT_INPUT } from './errors.js';
import { bytes, int, isoTime } from './format.js';

export function runInfo(file: string, opts: { json: boolean; onDamage: 'stop' | 'skip' }): void {
  const info = captureInfo(file, opts.onDamage);
  if (opts.json) {
    process.stdout.write(JSON.stringify(info, null, 2) + '\n');
  } else {
    const rows: [string, string][] = [
      ['File name', info.file],
      ['File type', info.format],
      ['Byte order', info.byteOrder],
      ['Timestamp resolution', info.timestampResolution],
      ['File size', `${int(info.fileSize)} bytes`],
      ['Number of packets', int(info.packets)],
      ['Data size', `${int(info.dataBytes)} bytes (${bytes(info.dataBytes)})`],
      ['Average packet size', `${info.averagePacketSize.toFixed(2)} bytes`],
      ['Snaplen-truncated packets', int(info.snaplenTruncated)],
      ['Packet comments', int(info.comments)],
    ];
    if (info.firstTime !== undefined) {
      rows.push(['First packet time', isoTime(info.firstTime)]);
      rows.push(['Last packet time', isoTime(info.lastTime!)]);
      rows.push(['Capture duration', `${info.durationSec.toFixed(6)} seconds`]);
    }
    const w = Math.max(...rows.map((r) => r[0].length)) + 1;
    let out = rows.map(([k, v]) => `${(k + ':').padEnd(w)}  ${v}`).join('\n') + '\n';
    out += `Interfaces: ${info.interfaces.length}\n`;
    for (const i of info.interfaces) {
      out += `  #${i.id}${info.sections > 1 ? ` (section ${i.section})` : ''} ${i.name ?? '(unnamed)'}${i.description ? ` "${i.description}"` : ''}: ${i.linktype}, snaplen ${i.snaplen}${i.fcsLen ? `, FCS ${i.fcsLen} bytes` : ''}, ${i.tsresol}, ${int(i.packets)} packets\n`;
    }
    out += 'Protocols:\n';
    for (const [k, v] of Object.entries(info.protocols)) out += `  ${k.padEnd(24)} ${int(v).padStart(10)}\n`;
    process.stdout.write(out);
  }
  for (const s of info.skipped) process.stderr.write(`dpemu: warning: skipped damaged data: ${s}\n`);
  if (info.damage) {
    process.stderr.write(`dpemu: ${info.damage}\n`);
    process.exitCode = EXIT_INPUT;
  }
}
