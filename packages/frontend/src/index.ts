export * from './app';
export * from './errors';
export * from './sse';
export * from './server';
export * from './validation';
export * from './routes/generate';
export * from './routes/health';
