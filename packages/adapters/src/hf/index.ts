export * from './families';
export * from './config';
export * from './match';
export * from './model';
export * from './heads';
export * from './unsupported';
export * from './styles';
export * from './width-norms';
