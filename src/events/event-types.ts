/** The spec's event types (logging-service v2, "Event Types"). */
export const EVENT_TYPES = [
  'review_started',
  'review_completed',
  'syntax_analysis_started',
  'syntax_analysis_completed',
  'llm_query_sent',
  'llm_feedback_received',
  'error_occurred',
] as const;

export type EventType = (typeof EVENT_TYPES)[number];

export const isEventType = (value: string): value is EventType =>
  (EVENT_TYPES as readonly string[]).includes(value);
