#!/usr/bin/env node
/**
 * The dpemu command. Every subcommand has --help; errors are one line on stderr with an exit
 * code that says what kind of failure it was (see EXIT_CODES_HELP).
 */
import { Command, CommanderError, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { describeError, exitCodeFor, EXIT_CODES_HELP, EXIT_OUTPUT, EXIT_USAGE } from './errors.js';
import { runReplay } from './replay.js';
import { defaultWorkers } from '../engine/pipeline.js';
import { runInfo } from './info.js';
import { runTrace } from './trace.js';
import { runBench } from './bench.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('dpemu')
    .description('Packet-level data-plane emulator: replays pcap/pcapng captures through emulated network elements')
    .version(pkg.version)
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText('after', `\n${EXIT_CODES_HELP}`)
    .exitOverride();

  program
    .command('replay')
    .description('Run a capture through the emulated data plane and write what comes out')
    .requiredOption('--in <file>', 'input capture (pcap or pcapng); - for standard input')
    .requiredOption('--out <file>', 'output capture (written atomically; never the input file); - for standard output')
    .addOption(new Option('--format <fmt>', 'output format (default: from the --out extension, else pcapng)').choices(['pcap', 'pcapng']))
    .option('--ns', 'pcap output: nanosecond timestamps (default microseconds)', false)
    .addOption(new Option('--on-damage <mode>', 'a damaged pcapng block: stop there, or skip to the next valid block').choices(['stop', 'skip']).default('stop'))
    .option('--node <file>', 'run the frames through one Linux node described by this YAML file')
    .option('--ingress <file>', 'with --node: interface each frame enters on, one name per line (line k = frame k)')
    .option('--seed <n>', 'seed of the PRNG behind random choices (statistic random, NAT ports)', '1')
    .option('--no-comments', 'pcapng output: no per-frame comment with the verdict and NAT')
    .option('--json', 'print the accounting as JSON on stdout', false)
    .option('--stats <file>', 'also write the accounting as JSON to this file')
    .option('--workers <n>', `worker threads; 1 = everything in one thread (default: ${Math.min(2, defaultWorkers())} for a node writing pcapng with comments from 32 MB or a pipe, where they pay off; else 1)`)
    .option('--no-progress', 'no progress bar (shown on a terminal for runs longer than a second)')
    .addHelpText('after', `
With no --node or --topology, the identity pipeline: every frame is parsed and written unchanged.
With --node, each frame enters the node on the interface given by --ingress, else the one the
pcapng record's interface name names, else the one whose MAC is the frame's destination MAC.
The output has one interface per Ethernet interface of the node; frames the node delivers
locally or drops are not written but counted by reason. The summary goes to stderr and ends
with the accounting: in = left the model + delivered + dropped (by reason) + errors (by kind).

Threads: with --workers N >= 2 and a node, the main thread reads, runs the node over every
frame in capture order and writes, and N-1 encoder threads serialise the records and their
comments; the identity pipeline has N-1 encoders (at least one). --workers 1 runs everything
in one thread. Without --workers: two threads (the node's and an encoder) for a node writing
pcapng with comments (the default output) from a file of 32 MB or more or a pipe, else one
(starting threads costs ~0.1 s; elsewhere they only add hand-overs; the summary says which).
The output is byte-identical whatever N. Ctrl-C stops reading, finishes the frames read and
writes a valid output (exit code 130); a second Ctrl-C stops at once without output.

Examples:
  dpemu replay --in pcaps/edge-flows.pcapng --out /tmp/copy.pcapng
  dpemu replay --node pcaps/edge-node.yaml --in pcaps/edge-flows.pcapng --out /tmp/edge.pcapng
  tcpdump -i eth0 -w - | dpemu replay --node node.yaml --in - --out - | wireshark -k -i -

${EXIT_CODES_HELP}`)
    .action(runReplay);

  program
    .command('trace')
    .description('Show every step one packet takes through a node: hooks, chains, rules, conntrack, NAT, route, device')
    .argument('[packet...]', 'a packet, e.g.: tcp 10.0.0.1:1234 > 172.21.0.10:80 syn in eth0 [ttl N] [len N] [df]')
    .requiredOption('--node <file>', 'the node (YAML)')
    .option('--in <file>', 'take the packet from this capture (the frames before it run first)')
    .option('--frame <n>', 'with --in: frame number, 1 = first', '1')
    .option('--ingress <file>', 'with --in: interface each frame enters on, one name per line')
    .option('--seed <n>', 'PRNG seed', '1')
    .addHelpText('after', `
Examples:
  dpemu trace --node pcaps/edge-node.yaml tcp 203.0.113.7:40000 '>' 169.61.10.5:443 syn in uplink
  dpemu trace --node pcaps/edge-node.yaml --in pcaps/edge-flows.pcapng --frame 3

${EXIT_CODES_HELP}`)
    .action(runTrace);

  program
    .command('bench')
    .description('Run the throughput benchmarks (the suite of `npm run bench`); dpemu bench --help for its options')
    .argument('[options...]', "the suite's options, e.g. --full, --json FILE, --only rules")
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .action((args: string[]) => runBench(args));

  program
    .command('info')
    .description('Describe a capture: format, link types, interfaces, packets, time span, protocols')
    .argument('<file>', 'capture file (pcap or pcapng), - for standard input')
    .option('--json', 'print as JSON', false)
    .addOption(new Option('--on-damage <mode>', 'a damaged pcapng block: stop there, or skip to the next valid block').choices(['stop', 'skip']).default('stop'))
    .addHelpText('after', `\n${EXIT_CODES_HELP}`)
    .action(runInfo);

  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return process.exitCode === undefined ? 0 : Number(process.exitCode);
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version end here with code 0; usage errors were already printed.
      return e.exitCode === 0 ? 0 : EXIT_USAGE;
    }
    process.stderr.write(`dpemu: ${describeError(e)}\n`);
    return exitCodeFor(e);
  }
}

// A reader of standard output that went away (`dpemu --help | head`, `dpemu info x --json |
// head -c 10`): stop quietly as other tools do, not with an unhandled 'error' event and a
// stack trace. (The capture written by `replay --out -` goes through its own writer, which
// reports a broken pipe as an output error, exit 4.)
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
  process.stderr.write(`dpemu: standard output: ${e.message}\n`);
  process.exit(EXIT_OUTPUT);
});

const code = await main(process.argv);
process.exitCode = code;
