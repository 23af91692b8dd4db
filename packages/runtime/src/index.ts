export * from './errors';
export * from './logger';
export * from './options';
export * from './names';
export * from './discovery/discovery';
export * from './transport/request-plane';
export * from './events/event-plane';
export * from './queue/work-queue';
