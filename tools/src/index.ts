/** @zerolm/tools: the fixture generator (benchmark scripts live beside it). */
export * from './fixtures';
export * from './checks';
