export * from './budget';
export * from './space';
export * from './moves';
export * from './pareto';
export * from './greedy';
export * from './evolution';
export * from './plan';
export * from './global';
