export * from './servers';
export * from './cluster';
export * from './security';
