/**
 * Errors about capture files. They carry where (file, byte offset, block or record) and what,
 * so the CLI can print one line and exit non-zero without a stack trace.
 */
export class CaptureError extends Error {
  override readonly name = 'CaptureError';
  constructor(
    readonly file: string,
    /** Byte offset in the file where the problem is (-1 when not about a position). */
    readonly offset: number,
    /** Which block or record, e.g. "record 17" or "block 5 (Enhanced Packet Block)". */
    readonly where: string,
    readonly what: string,
  ) {
    super(`${file}: ${offset >= 0 ? `byte offset ${offset}, ` : ''}${where ? where + ': ' : ''}${what}`);
  }
}
