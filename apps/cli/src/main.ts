#!/usr/bin/env node
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { compareCommand } from './commands/compare';
import { pruneCommand } from './commands/prune';
import { rankCommand } from './commands/rank';
import { scoreCommand } from './commands/score';
import { reportError, UsageError } from './errors';

/** Builds the parser; exported so tests can run commands in-process. */
export function buildParser(argv: string[]) {
  return yargs(argv)
    .scriptName('zerolm')
    .usage('$0 <command> [options]\n\nData-free ranking of transformer architectures and structured pruning with the ZeroLM proxy.')
    .command(scoreCommand)
    .command(rankCommand)
    .command(pruneCommand)
    .command(compareCommand)
    .demandCommand(1, 'name a command: score, rank, prune, compare')
    .strict()
    .recommendCommands()
    .help()
    .alias('h', 'help')
    .version(false)
    .wrap(Math.min(110, process.stdout.columns || 110))
    .exitProcess(false)
    .fail((message, error) => {
      // yargs' own messages can span lines; the error contract is one line.
      throw error ?? new UsageError(message.replace(/\s*\n\s*/g, ' '));
    });
}

export async function main(argv: string[] = hideBin(process.argv)): Promise<number> {
  try {
    await buildParser(argv).parseAsync();
    return 0;
  } catch (error) {
    return reportError(error);
  }
}

if (require.main === module) {
  main().then((code) => {
    process.exitCode = code;
  });
}
