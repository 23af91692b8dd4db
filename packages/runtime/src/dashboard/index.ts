export { DashboardCollector, bucketQuantile, DASHBOARD_METRICS } from './data';
export type { DashboardCollectorOptions, DashboardData, DashboardWorkerRow, HistoryPoint, Percentiles } from './data';
export { createDashboardHandler } from './handler';
export type { DashboardHandler, DashboardHandlerOptions, DashboardPart } from './handler';
