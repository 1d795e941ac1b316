/**
 * What the dpemu command's exit codes mean, and how errors become one line on stderr.
 * No stack traces for anything a user can cause; a stack only for bugs, and only with DPEMU_DEBUG=1.
 */
import { CaptureError } from '../pcap/errors.js';
import { WriterError } from '../pcap/writer.js';
import { ConfigError } from '../elements/linux/config.js';
import { IngressError } from '../engine/ingress.js';
import { RulesetError } from '../netfilter/iptables-save.js';

export const EXIT_OK = 0;
/** A bug in dpemu (an exception nobody expected). */
export const EXIT_INTERNAL = 1;
/** Bad command line. */
export const EXIT_USAGE = 2;
/** Bad input: a capture that cannot be read (or is damaged), a bad configuration file. */
export const EXIT_INPUT = 3;
/** The output cannot be written. */
export const EXIT_OUTPUT = 4;
/** Stopped by SIGINT; the output holds everything processed. */
export const EXIT_INTERRUPTED = 130;

export const EXIT_CODES_HELP = `Exit codes:
  0    success
  1    internal error (a bug in dpemu; set DPEMU_DEBUG=1 for a stack trace)
  2    usage error (bad options)
  3    bad input: a capture that cannot be read or is damaged, a bad configuration
  4    the output cannot be written
  130  interrupted (SIGINT)`;

/** An error the user can fix, with the exit code it maps to. */
export class UserError extends Error {
  constructor(message: string, readonly exitCode: number = EXIT_USAGE) {
    super(message);
  }
}

export function exitCodeFor(e: unknown): number {
  if (e instanceof UserError) return e.exitCode;
  if (e instanceof CaptureError || e instanceof ConfigError || e instanceof IngressError || e instanceof RulesetError) return EXIT_INPUT;
  if (e instanceof WriterError) return EXIT_OUTPUT;
  return EXIT_INTERNAL;
}

export function describeError(e: unknown): string {
  if (e instanceof UserError || e instanceof CaptureError || e instanceof WriterError || e instanceof ConfigError || e instanceof IngressError || e instanceof RulesetError) {
    return e.message;
  }
  const msg = e instanceof Error ? e.message : String(e);
  const stack = process.env.DPEMU_DEBUG && e instanceof Error ? `\n${e.stack}` : '';
  return `internal error: ${msg}${stack}`;
}
