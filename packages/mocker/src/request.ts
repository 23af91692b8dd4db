/**
 * What both engine models do with a submitted request before scheduling it: validate it against
 * the engine's cache, and name its blocks by the router's hashes (hex wire form).
 * @packageDocumentation
 */
import { type BlockHasher, PACKED_STRIDE, packedToHex, RouterInvalidArgumentError } from '@dynamo-ts/router';
import type { SimRequest } from './engine';

/**
 * Checks a submitted request: a non-empty id not in flight, non-empty token ids, a positive
 * `maxTokens`, and prompt plus `maxTokens` fitting `numBlocks` blocks.
 * @throws RouterInvalidArgumentError naming what is wrong
 */
export function checkSimRequest(
  request: SimRequest,
  inFlight: { has(id: string): boolean },
  blockSize: number,
  numBlocks: number,
): SimRequest {
  const { requestId, tokenIds, maxTokens } = request ?? ({} as SimRequest);
  if (typeof requestId !== 'string' || requestId.length === 0) {
    throw new RouterInvalidArgumentError('requestId must be a non-empty string');
  }
  if (inFlight.has(requestId)) throw new RouterInvalidArgumentError(`request ${requestId} is already in flight`);
  if (
    tokenIds === null ||
    typeof tokenIds !== 'object' ||
    typeof tokenIds.length !== 'number' ||
    !(tokenIds.length > 0)
  ) {
    throw new RouterInvalidArgumentError(`request ${requestId}: tokenIds must be a non-empty array of token ids`);
  }
  if (!Number.isSafeInteger(maxTokens) || maxTokens < 1) {
    throw new RouterInvalidArgumentError(
      `request ${requestId}: maxTokens must be a positive integer, got ${String(maxTokens)}`,
    );
  }
  const prompt = tokenIds.length;
  const blocks = Math.ceil((prompt + maxTokens) / blockSize);
  if (blocks > numBlocks) {
    throw new RouterInvalidArgumentError(
      `request ${requestId} needs ${blocks} KV blocks (prompt ${prompt} + maxTokens ${maxTokens} tokens), more than numBlocks ${numBlocks}`,
    );
  }
  return request;
}

/** The prompt's full blocks by their sequence and local hashes (16 hex digits each). */
export function blockHexHashes(
  hasher: BlockHasher,
  tokenIds: ArrayLike<number>,
): { seqHashes: string[]; localHashes: string[] } {
  const p = hasher.hash(tokenIds);
  const seqHashes = new Array<string>(p.count);
  const localHashes = new Array<string>(p.count);
  const w = p.words;
  for (let i = 0; i < p.count; i++) {
    const at = p.base + PACKED_STRIDE * i;
    localHashes[i] = packedToHex(w[at]!, w[at + 1]!);
    seqHashes[i] = packedToHex(w[at + 2]!, w[at + 3]!);
  }
  return { seqHashes, localHashes };
}
