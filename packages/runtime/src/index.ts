export * from './session';
export * from './feeds';
export * from './positions';
export * from './runner';
export * from './decode';
export * from './tokenizer';
