export * from './service';
export * from './graph';
export * from './config';
export * from './platform';
export * from './serve';
export * from './settings';
export * from './loader';
export * from './distributed';
