export * from './servers';
export * from './cluster';
