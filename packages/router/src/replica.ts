/**
 * The messages several `KvRouter` replicas exchange (e.g. on the event plane) so that each one
 * counts the others' requests as load, and fences the workers the others found dead.
 *
 * Each replica sees every worker's KV events and load reports, but only the requests it routed
 * itself. Without more, replicas that start at the same instant see the same idle worker and all
 * send it their prompts. So every decision, first token and end is published to the others:
 *
 * ```json
 * {"type":"routed","router_id":"r1","request_id":"q7","worker_id":"w3","prefill_tokens":1984,"blocks":32,"sequence_hashes":["9c1f...", "..."]}
 * {"type":"first_token","router_id":"r1","request_id":"q7"}
 * {"type":"finished","router_id":"r1","request_id":"q7"}
 * {"type":"fence","router_id":"r1","worker_id":"w3","reason":"no_responders"}
 * {"type":"unfence","router_id":"r1","worker_id":"w3"}
 * {"type":"state","router_id":"r1","requests":[{"request_id":"q7","worker_id":"w3","prefill_tokens":0,"blocks":32,"sequence_hashes":[],"prefill_done":true}],"fenced":["w5"]}
 * {"type":"leave","router_id":"r1"}
 * ```
 *
 * `state` is a replica's whole picture (its requests in flight and the workers it fences), sent
 * when it starts and then periodically: a receiver replaces what it held for that replica, which
 * repairs lost messages. `leave` (or the replica leaving discovery) releases all of its requests.
 * Every message is untrusted input: {@link validateReplicaMessage} checks shapes and bounds.
 * @packageDocumentation
 */
import { isWireHash, type ValidationResult, type WireHash } from './events';

/** Most sequence hashes a `routed` entry may carry (a 4 M-token prompt at 64 tokens a block). */
export const MAX_REPLICA_HASHES = 65_536;
/** Most requests a `state` message may carry. */
export const MAX_REPLICA_STATE_REQUESTS = 65_536;
/** Longest id (router, request, worker) accepted in a message. */
export const MAX_REPLICA_ID_LENGTH = 512;

/** One request in flight, as a replica shares it. */
export interface ReplicaRequest {
  /** The id the routing replica gave it (unique per replica). */
  request_id: string;
  /** The worker it went to. */
  worker_id: string;
  /** Prompt tokens the worker must still prefill (0 once its first token came). */
  prefill_tokens: number;
  /** Blocks it occupies on the worker in all (at least `sequence_hashes.length`). */
  blocks: number;
  /** Its full blocks by sequence hash (shared blocks count once per worker). */
  sequence_hashes: WireHash[];
  /** Its first token came (its prefill is over); default false. */
  prefill_done?: boolean;
}

/** A replica routed a request. */
export interface ReplicaRoutedMessage extends ReplicaRequest {
  /** Discriminant. */
  type: 'routed';
  /** The sending replica. */
  router_id: string;
}

/** A request routed by the sender produced its first token, or ended. */
export interface ReplicaProgressMessage {
  /** Discriminant. */
  type: 'first_token' | 'finished';
  /** The sending replica. */
  router_id: string;
  /** The request. */
  request_id: string;
}

/** The sender fenced a worker (it failed or was marked down), or saw it answer again. */
export interface ReplicaFenceMessage {
  /** Discriminant. */
  type: 'fence' | 'unfence';
  /** The sending replica. */
  router_id: string;
  /** The worker. */
  worker_id: string;
  /** Why (fence only), e.g. `marked_down`, `no_responders`. */
  reason?: string;
}

/** The sender's whole picture: replaces what receivers hold for it. */
export interface ReplicaStateMessage {
  /** Discriminant. */
  type: 'state';
  /** The sending replica. */
  router_id: string;
  /** Its requests in flight. */
  requests: ReplicaRequest[];
  /** Workers it fences. */
  fenced: string[];
}

/** The sender stops: its requests are released. */
export interface ReplicaLeaveMessage {
  /** Discriminant. */
  type: 'leave';
  /** The sending replica. */
  router_id: string;
}

/** Any message of the replica protocol. */
export type ReplicaMessage =
  ReplicaRoutedMessage | ReplicaProgressMessage | ReplicaFenceMessage | ReplicaStateMessage | ReplicaLeaveMessage;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkId(v: unknown, name: string, errors: string[]): void {
  if (typeof v !== 'string' || v.length === 0 || v.length > MAX_REPLICA_ID_LENGTH) {
    errors.push(`${name} must be a string of 1 to ${MAX_REPLICA_ID_LENGTH} characters`);
  }
}

function checkCount(v: unknown, name: string, errors: string[]): void {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) errors.push(`${name} must be an integer >= 0`);
}

function checkRequest(v: unknown, at: string, errors: string[]): void {
  if (!isObject(v)) {
    errors.push(`${at} must be an object`);
    return;
  }
  checkId(v.request_id, `${at}request_id`, errors);
  checkId(v.worker_id, `${at}worker_id`, errors);
  checkCount(v.prefill_tokens, `${at}prefill_tokens`, errors);
  checkCount(v.blocks, `${at}blocks`, errors);
  const hs = v.sequence_hashes;
  if (!Array.isArray(hs) || hs.length > MAX_REPLICA_HASHES) {
    errors.push(`${at}sequence_hashes must be an array of at most ${MAX_REPLICA_HASHES} hex hashes`);
  } else {
    for (let i = 0; i < hs.length; i++) {
      if (!isWireHash(hs[i])) {
        errors.push(`${at}sequence_hashes[${i}] must be a hex hash`);
        break;
      }
    }
    if (typeof v.blocks === 'number' && v.blocks < hs.length)
      errors.push(`${at}blocks must be >= sequence_hashes.length`);
  }
  if (v.prefill_done !== undefined && typeof v.prefill_done !== 'boolean') {
    errors.push(`${at}prefill_done must be a boolean`);
  }
}

/** Validates an untrusted value (e.g. parsed JSON) as a {@link ReplicaMessage}. */
export function validateReplicaMessage(value: unknown): ValidationResult<ReplicaMessage> {
  if (!isObject(value)) return { ok: false, errors: ['replica message must be an object'] };
  const errors: string[] = [];
  checkId(value.router_id, 'router_id', errors);
  switch (value.type) {
    case 'routed':
      checkRequest(value, '', errors);
      break;
    case 'first_token':
    case 'finished':
      checkId(value.request_id, 'request_id', errors);
      break;
    case 'fence':
    case 'unfence':
      checkId(value.worker_id, 'worker_id', errors);
      if (value.reason !== undefined && (typeof value.reason !== 'string' || value.reason.length > 200)) {
        errors.push('reason must be a string of at most 200 characters');
      }
      break;
    case 'state': {
      const rs = value.requests;
      if (!Array.isArray(rs) || rs.length > MAX_REPLICA_STATE_REQUESTS) {
        errors.push(`requests must be an array of at most ${MAX_REPLICA_STATE_REQUESTS} entries`);
      } else {
        for (let i = 0; i < rs.length && errors.length === 0; i++) checkRequest(rs[i], `requests[${i}].`, errors);
      }
      const f = value.fenced;
      if (!Array.isArray(f) || f.length > MAX_REPLICA_STATE_REQUESTS)
        errors.push('fenced must be an array of worker ids');
      else for (let i = 0; i < f.length && errors.length === 0; i++) checkId(f[i], `fenced[${i}]`, errors);
      break;
    }
    case 'leave':
      break;
    default:
      errors.push('type must be one of "routed", "first_token", "finished", "fence", "unfence", "state", "leave"');
  }
  return errors.length === 0 ? { ok: true, value: value as unknown as ReplicaMessage } : { ok: false, errors };
}

/**
 * Key under which a peer's request is tracked: starts with a NUL so it cannot equal a local id
 * (the router refuses local ids that start with one).
 */
export function peerRequestKey(routerId: string, requestId: string): string {
  return `\u0000${routerId}\u0000${requestId}`;
}
