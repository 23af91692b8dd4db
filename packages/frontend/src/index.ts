/**
 * `@dynamo-ts/frontend`: the HTTP frontend (express): `/generate`, the OpenAI routes, health and
 * metrics, around a generate function you give it.
 * @packageDocumentation
 */
export { createFrontendApp } from './app';
export type { FrontendOptions } from './app';
export { OPEN_PATHS, apiKeyAuth } from './auth';
export { HTTP_ERRORS, HttpError, errorBody, errorStatus, sendError } from './errors';
export type { ErrorBody } from './errors';
export { FrontendMetrics, RequestTracker, UNSPECIFIED_MODEL } from './metrics';
export type { FrontendEndpoint, RequestStatus, RequestType } from './metrics';
export { RequestScope, releaseUpstream } from './request-scope';
export type { AbortCause } from './request-scope';
export { CHAT_FORMAT, TEXT_FORMAT, checkModel, serveCompletion } from './openai/completion';
export type { CompletionFormat, CompletionJob, ModelsFn, OpenAiDeps, Usage } from './openai/completion';
export { CHAT_COMPLETIONS_BODY_SCHEMA, CHAT_ROLES, COMPLETIONS_BODY_SCHEMA } from './openai/schemas';
export type { ChatCompletionsBody, ChatContentPart, ChatMessage, CommonBody, CompletionsBody } from './openai/schemas';
export { MAX_STOP_LENGTH, StopMatcher } from './openai/stop';
export { endSse, flushSse, startSse, waitDrain, wantsEventStream, writeSse } from './sse';
export { startFrontend } from './server';
export type { FrontendServer, FrontendServerOptions } from './server';
export { compileBodySchema, validateBody } from './validation';
export { GENERATE_BODY_SCHEMA, generateRoute } from './routes/generate';
export type {
  ChatTurn,
  FinishReason,
  GenerateEvent,
  GenerateFn,
  GenerateOptions,
  GenerateRequest,
  SamplingParams,
  GenerateRouteOptions,
} from './routes/generate';
export { healthRoutes } from './routes/health';
export type { HealthFn } from './routes/health';
export { chatCompletionsRoute, chatPrompt, chatTurns } from './routes/chat-completions';
export { completionPrompt, completionsRoute } from './routes/completions';
export { metricsRoutes } from './routes/metrics';
export { modelsRoutes } from './routes/models';
export type { ModelCard } from './routes/models';
export { dashboardRoutes } from './dashboard/routes';
export type { DashboardRoutes, FrontendDashboardOptions } from './dashboard/routes';
export { Admission, OVERLOAD_STATUSES, admitRequest } from './admission';
export type { AdmissionOptions, OverloadStatus, Release, RejectReason } from './admission';
