export { NatsRequestPlane, type NatsRequestPlaneOptions } from './plane';
