/**
 * Errors of the netfilter configuration parsers and the rule compiler (iptables-save, ipset
 * save). The message always names the file, the line and what is wrong, e.g.
 * `node.rules:17: unknown match "-m foo"`. They are thrown when configuration is loaded, never
 * per packet.
 */
export class RulesetError extends Error {
  /** File name as given by the caller (or "<iptables-save>" / "<ipset>"). */
  readonly file: string;
  /** 1-based line number, 0 when the error is not about one line (e.g. a missing COMMIT at EOF). */
  readonly line: number;
  /** The offending token, '' when there is none. */
  readonly token: string;
  /** What is wrong, without the file:line prefix. */
  readonly reason: string;

  constructor(file: string, line: number, reason: string, token = '') {
    super(line > 0 ? `${file}:${line}: ${reason}` : `${file}: ${reason}`);
    this.name = 'RulesetError';
    this.file = file;
    this.line = line;
    this.token = token;
    this.reason = reason;
  }
}
