/** An error in how the command was called (bad flag value, missing file): exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/**
 * Prints an error as one line. Everything that reaches the top level is the user's problem to fix
 * (bad input, impossible budget) or ours; either way one line, exit code 2, and the stack only
 * when ZEROLM_DEBUG is set.
 */
export function reportError(error: unknown, stderr: NodeJS.WritableStream = process.stderr): number {
  const message = error instanceof Error ? error.message : String(error);
  stderr.write(`zerolm: error: ${message.split('\n')[0]}\n`);
  if (process.env.ZEROLM_DEBUG && error instanceof Error && error.stack) stderr.write(`${error.stack}\n`);
  return 2;
}
