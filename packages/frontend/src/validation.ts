import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv';
import type { Request } from 'express';
import { HttpError } from './errors';

const ajv = new Ajv({ allErrors: false, strict: false });

/** Compiles a JSON schema for request bodies. */
export function compileBodySchema<T>(schema: Record<string, unknown>): ValidateFunction<T> {
  return ajv.compile<T>(schema);
}

function fieldOf(e: ErrorObject): string {
  const parts = e.instancePath.split('/').filter(Boolean);
  if (e.keyword === 'required') parts.push((e.params as { missingProperty: string }).missingProperty);
  if (e.keyword === 'additionalProperties') parts.push((e.params as { additionalProperty: string }).additionalProperty);
  return parts.join('.');
}

function describe(e: ErrorObject): string {
  const field = fieldOf(e);
  switch (e.keyword) {
    case 'required':
      return `${field} is required`;
    case 'type':
      return `${field} must be of type ${String((e.params as { type: string | string[] }).type)
        .split(',')
        .join(' or ')}`;
    case 'additionalProperties':
      return `${field} is not a known field`;
    case 'enum':
      return `${field} must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.join(', ')}`;
    case 'pattern':
      return field === 'request_id'
        ? 'request_id must be printable ASCII (it is echoed in the x-request-id header)'
        : `${field} must match ${(e.params as { pattern: string }).pattern}`;
    default:
      return `${field || 'body'} ${e.message ?? 'is invalid'}`;
  }
}

/** `application/json`, with parameters or not, in any case: the usual header, checked without a parse. */
function isPlainJsonType(contentType: string | undefined): boolean {
  return contentType !== undefined && /^application\/json\s*(;|$)/i.test(contentType);
}

/**
 * Checks the content type and validates the JSON body of `req` against `validate`.
 * Throws an {@link HttpError}: 415 for a non-JSON content type, 400 naming the field otherwise.
 */
export function validateBody<T>(req: Request, validate: ValidateFunction<T>): T {
  if (!isPlainJsonType(req.headers['content-type']) && !req.is('application/json')) {
    throw new HttpError(
      415,
      'invalid_request_error',
      'unsupported_media_type',
      `Content-Type must be application/json (got ${req.headers['content-type'] ?? 'none'})`,
    );
  }
  const body: unknown = req.body;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new HttpError(400, 'invalid_request_error', 'invalid_body', 'request body must be a JSON object');
  }
  if (!validate(body)) {
    const e = validate.errors![0]!;
    throw new HttpError(400, 'invalid_request_error', 'invalid_field', describe(e), fieldOf(e) || undefined);
  }
  return body;
}
