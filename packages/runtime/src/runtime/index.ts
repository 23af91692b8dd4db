export * from './instance';
export * from './runtime';
export * from './endpoint';
export * from './client';
