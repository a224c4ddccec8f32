// Types for @loopai/client. The runtime is plain ES modules in ../src; these describe them.

// ---------------------------------------------------------------- events

/** Event types the hub itself publishes on its standard topics (docs/protocol.md). */
export type KnownEventType =
  | 'task.created' | 'task.updated' | 'task.deleted'
  | 'execution.completed' | 'execution.failed' | 'execution.timed_out'
  | 'artifact.created' | 'artifact.activated' | 'artifact.deprecated'
  | 'generation.started' | 'generation.progress' | 'generation.completed' | 'generation.failed'
  | 'validation.completed' | 'accuracy.breached' | 'accuracy.recovered'
  | 'error'
  | 'metrics.snapshot'
  | 'instance.up' | 'instance.down' | 'instance.draining';

/** JSON as it comes off the wire. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/**
 * Maps an event type to the shape of its `data`. Extend it by declaration merging to type your
 * own events:
 *
 *     declare module '@loopai/client' { interface EventDataMap { 'order.paid': { id: string } } }
 */
export interface EventDataMap {
  'task.created': Task;
  'task.updated': Task;
  'task.deleted': { task_id: string; [key: string]: Json | undefined };
  'execution.completed': Execution;
  'execution.failed': Execution;
  'execution.timed_out': Execution;
  'artifact.created': Artifact;
  'artifact.activated': Artifact;
  'artifact.deprecated': Artifact;
  /** Topics `tasks.<id>.generations` and `generations`. */
  'generation.started': Generation;
  'generation.progress': GenerationProgress;
  'generation.completed': Generation;
  'generation.failed': Generation;
  /** Topics `tasks.<id>.validations` and `validations`. */
  'validation.completed': Validation;
  'accuracy.breached': AccuracyChange;
  'accuracy.recovered': AccuracyChange;
}

/** One event: `cursor` is opaque (save it to resume later), `ts` is publish time in ms. */
export interface HubEvent<T extends string = string> {
  kind: 'event';
  topic: string;
  cursor: string;
  type: T;
  ts: number | null;
  data: T extends keyof EventDataMap ? EventDataMap[T] : Json;
}

/** The typed union of every event: narrow on `type` to get typed `data`. */
export type AnyHubEvent = { [T in keyof EventDataMap]: HubEvent<T> }[keyof EventDataMap] | HubEvent<string>;

/**
 * Events between `since` and `oldest` were lost to this client (history expired, or the hub
 * restarted without persistence): refetch state. Delivery goes on after it.
 */
export interface GapEvent {
  kind: 'gap';
  topic: string;
  /** The resume cursor; null when the topic was empty when subscribed (nothing to resume from). */
  since: string | null;
  oldest: string | null;
}

export type SubscriptionItem = AnyHubEvent | GapEvent;

/**
 * True when `item` is an event (of `type`, if given); narrows `data` to `EventDataMap[type]`:
 *
 *     if (isEvent(item, 'execution.completed')) item.data.latency_ms
 */
export declare function isEvent<T extends keyof EventDataMap>(item: SubscriptionItem, type: T): item is HubEvent<T>;
export declare function isEvent(item: SubscriptionItem, type?: string): item is HubEvent<string>;

// ---------------------------------------------------------------- hub client

export type ConnectionState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed';

export interface StateChange {
  state: ConnectionState;
  previous: ConnectionState;
  /** connecting / reconnecting: the attempt number. */
  attempt?: number;
  /** reconnecting: how long until the next attempt. */
  delayMs?: number;
  /** reconnecting / closed: the close code that ended the last connection. */
  code?: number | null;
  reason?: string;
  /** open: the session id and instance from `welcome`. */
  session?: string;
  instance?: string | null;
  /** closed: why, when the client did not close itself. */
  error?: HubClosedError | null;
}

export interface BackoffOptions {
  /** Ceiling of the first delay (ms). Default 250. */
  initialMs?: number;
  /** Upper bound of any delay (ms). Default 10000. */
  maxMs?: number;
  /** Growth of the ceiling per failed attempt. Default 2. */
  factor?: number;
  /** Failed attempts in a row before giving up. Default Infinity. */
  maxAttempts?: number;
}

export interface Logger {
  debug?(message: string, fields?: object): void;
  info?(message: string, fields?: object): void;
  warn?(message: string, fields?: object): void;
}

export interface HubClientOptions {
  /** An API key or connection token, or a function returning one (called per attempt). */
  token?: string | null | (() => string | null | Promise<string | null>);
  /**
   * Called before every connection attempt for the token to use (instead of `token`), say one
   * freshly minted with `ApiClient.wsToken()`. When a connection token expires (close 4401
   * after `welcome`) the client calls it again, reconnects and resumes: nothing is lost.
   */
  getToken?: (() => string | null | Promise<string | null>) | null;
  /** The WebSocket class; default: the global one, else the `ws` package (Node 20). */
  WebSocket?: unknown;
  /** Where the token goes: 'header' (Node `ws` only), 'query' (`?token=`), 'auto' (default). */
  tokenIn?: 'auto' | 'header' | 'query';
  backoff?: BackoffOptions;
  /** Open + welcome must complete within this (ms). Default 10000. */
  connectTimeoutMs?: number;
  /** A publish (or unsubscribe) reply must come within this (ms). Default 10000. */
  requestTimeoutMs?: number;
  /** Override the heartbeat from `welcome` (ms): a ping each interval, dead after two silent. */
  heartbeatMs?: number | null;
  /** A connection open this long (ms) resets the backoff. Default 5000. */
  stableMs?: number;
  logger?: Logger | null;
}

export interface SubscribeOptions {
  handler?: (item: SubscriptionItem) => void;
  /** Starting cursors per topic (say, saved from an earlier run): resume from there. */
  since?: Record<string, string>;
}

export interface Welcome {
  op: 'welcome';
  session: string;
  instance?: string;
  protocol?: number;
  heartbeat_ms: number;
  max_frame_bytes?: number;
}

export declare class HubClient {
  constructor(url: string, options?: HubClientOptions);
  /** Create a client and wait for its first connection. */
  static connect(url: string, options?: HubClientOptions): Promise<HubClient>;
  readonly url: string;
  readonly state: ConnectionState;
  readonly welcome: Welcome | null;
  readonly closedError: HubClosedError | null;
  /** The last cursor delivered on a topic. */
  cursor(topic: string): string | null;
  on(name: 'state', listener: (change: StateChange) => void): () => void;
  on(name: 'error', listener: (error: Error) => void): () => void;
  off(name: 'state' | 'error', listener: (...args: any[]) => void): void;
  connect(): Promise<this>;
  subscribe(topics: string | string[], handler?: (item: SubscriptionItem) => void, options?: SubscribeOptions): Promise<Subscription>;
  subscribe(topics: string | string[], options: SubscribeOptions): Promise<Subscription>;
  unsubscribe(target: Subscription | string | string[]): Promise<void>;
  publish(topic: string, type: string, data?: unknown, options?: { idempotencyKey?: string }): Promise<{ topic: string; cursor: string }>;
  close(code?: number, reason?: string): Promise<void>;
}

export declare class Subscription implements AsyncIterable<SubscriptionItem> {
  readonly topics: string[];
  /** Topics the server refused, each with its error. */
  readonly refused: { topic: string; error: HubRequestError }[];
  readonly ended: boolean;
  unsubscribe(): Promise<void>;
  [Symbol.asyncIterator](): AsyncIterator<SubscriptionItem>;
}

// ---------------------------------------------------------------- errors

export declare class LoopaiError extends Error {}

export declare class HubError extends LoopaiError {
  /** 'connection_lost', 'timeout', 'too_large', a server error code, … */
  code: string;
}

export declare class HubRequestError extends HubError {
  ref: string | null;
  topic: string | null;
}

export declare class HubProtocolError extends HubError {
  /** What the server sent (truncated when not JSON). */
  frame: unknown;
}

export declare class HubClosedError extends HubError {
  /** 'closed' (by its owner), 'refused' (4401, 4403, 1008, 1009), 'gave_up', 'bad_config'. */
  code: string;
  closeCode: number | null;
  reason: string;
}

export declare class ApiError extends LoopaiError {
  /** HTTP status; 0 when no answer came (network error, timeout). */
  status: number;
  code: string;
  details: Json | null;
  traceId: string | null;
  retryAfter: number | null;
}

// ---------------------------------------------------------------- REST

export interface Example { input: Json; output: Json }

/** How a task compares an output with the expected one. */
export interface CompareOptions {
  method?: 'exact' | 'normalized' | 'structured' | 'set' | string;
  numeric_tolerance?: number;
  relative_tolerance?: number;
  ignore_keys?: string[];
  case_sensitive?: boolean;
}

/** A version's validated accuracy over its rolling window, with its Wilson 95% interval. */
export interface VersionAccuracy {
  version: number;
  samples: number;
  matches: number;
  /** matches / samples; absent before the first validation. */
  accuracy?: number | null;
  low: number;
  high: number;
  breached?: boolean;
}

export interface Task {
  id: string;
  name: string;
  description?: string;
  input_schema?: Json;
  output_schema?: Json;
  examples?: Example[];
  accuracy_target?: number;
  latency_target_ms?: number;
  sampling_rate?: number;
  include_input_in_events?: boolean;
  active_version?: number | null;
  total_versions?: number;
  created_at?: string;
  updated_at?: string;
  /** The backend that generates its programs; absent: the server's default. */
  generator?: 'examples' | 'openai' | 'http' | null;
  /** Who judges its sampled executions; absent: the server's default. */
  oracle?: 'cases' | 'llm' | 'feedback' | null;
  comparison?: CompareOptions;
  /** The active version's validated accuracy (servers with the loop). */
  accuracy?: VersionAccuracy | null;
  [key: string]: unknown;
}

export interface Artifact {
  id?: string;
  task_id: string;
  version: number;
  status?: 'validated' | 'failed' | 'active' | 'deprecated' | string;
  language?: 'python' | string;
  code?: string;
  example_accuracy?: number | null;
  synthesis_strategy?: string | null;
  llm_provider?: string | null;
  llm_model?: string | null;
  activated_at?: string | null;
  /** A key's name, `generation <id>`, or `anonymous` when auth is off. */
  activated_by?: string | null;
  /** The generation job that made it; absent for uploads. */
  generation_id?: string | null;
  cost_usd?: number | null;
  generation_ms?: number | null;
  /** `breached` while its validated accuracy is below the task's target. */
  accuracy_state?: 'ok' | 'breached' | string;
  [key: string]: unknown;
}

export interface Execution {
  execution_id: string;
  task_id: string;
  program_id?: string;
  version?: number;
  status: 'success' | 'error' | 'timeout' | string;
  output?: Json;
  error_message?: string;
  latency_ms?: number;
  memory_usage_mb?: number;
  sampled_for_validation?: boolean;
  executed_at?: string;
  input?: Json;
  /** Only in events: the output was too large to carry; `getExecution()` has it. */
  output_omitted?: boolean;
  [key: string]: unknown;
}

// ---------------------------------------------------------------- the loop

export type GenerationStatus = 'queued' | 'running' | 'completed' | 'failed';
export type ActivateMode = 'never' | 'if_validated' | 'if_better';
export type GeneratorBackend = 'examples' | 'openai' | 'http';

/** A generation job (`queued` → `running` → `completed` | `failed`). */
export interface Generation {
  id: string;
  task_id: string;
  status: GenerationStatus;
  backend: GeneratorBackend | string;
  activate: ActivateMode;
  attempts: number;
  /** Whether this job made its version the active one. */
  activated: boolean;
  created_at: string;
  updated_at: string;
  cases_passed?: number;
  cases_total?: number;
  /** Share of the known cases the new program answers right. */
  accuracy?: number;
  /** The artifact version it created (completed jobs). */
  version?: number;
  model?: string;
  error?: { code: string; message: string };
  finished_at?: string;
}

/** The data of `generation.progress`: one attempt checked against the cases. */
export interface GenerationProgress {
  generation_id: string;
  task_id: string;
  attempt: number;
  cases_passed: number;
  cases_total: number;
  rejected: Json;
}

export interface GenerateOptions {
  /** Default: the task's generator, else the server's. */
  backend?: GeneratorBackend | null;
  /** Default (server side): `if_better`. */
  activate?: ActivateMode | null;
}

/** What `waitForGeneration` rejects with when the job outlives `timeoutMs`. */
export interface GenerationTimeoutError extends LoopaiError {
  name: 'TimeoutError';
  code: 'timeout';
  /** The last state polled. */
  generation: Generation;
}

export type CaseSource = 'example' | 'feedback' | 'oracle' | 'manual';

export interface Case {
  id: string;
  task_id: string;
  input: Json;
  output: Json;
  source: CaseSource | string;
  created_at: string;
  /** The execution that feedback made it from. */
  execution_id?: string;
}

export interface CaseInput {
  input: unknown;
  output: unknown;
  source?: CaseSource;
}

export interface CasePage {
  items: Case[];
  total: number;
  next_cursor?: string | null;
}

export interface CasesAdded {
  /** New inputs stored (a known input gets its output replaced and counts too). */
  added: number;
  total: number;
}

/** An execution judged by an oracle. */
export interface Validation {
  id: string;
  execution_id: string;
  task_id: string;
  program_id: string;
  version: number;
  oracle: 'cases' | 'llm' | 'feedback' | string;
  method: string;
  match: boolean;
  score: number;
  validated_at: string;
  expected?: Json;
  actual?: Json;
  failure_type?: string;
  detail?: string;
}

export interface ValidationPage {
  items: Validation[];
  next_cursor?: string | null;
}

export interface FeedbackOptions {
  /** What was right (null is a value too). */
  expectedOutput?: unknown;
  /** `true` confirms the output the execution gave; `false` needs `expectedOutput`. */
  correct?: boolean | null;
}

export interface FeedbackResult {
  case: Case;
  /** The execution's validation: the one feedback made, or the one it already had. */
  validation?: Validation;
  already_validated?: boolean;
}

export interface TaskAccuracy {
  task_id: string;
  target: number;
  window: number;
  versions: VersionAccuracy[];
}

/** The data of `accuracy.breached` / `accuracy.recovered`. */
export interface AccuracyChange {
  task_id: string;
  version: number;
  program_id: string;
  target: number;
  samples: number;
  matches: number;
  accuracy: number | null;
  low: number;
  high: number;
}

export interface ExecuteRequest {
  input: Json;
  version?: number;
  force_validation?: boolean;
  timeout_ms?: number;
}

export interface TopicEvents {
  events: { topic: string; cursor: string; type: string; ts: number; data: Json }[];
  gap: boolean;
  oldest: string | null;
  latest: string | null;
}

export interface ApiClientOptions {
  token?: string | null | (() => string | null | Promise<string | null>);
  fetch?: typeof fetch;
  timeoutMs?: number;
  headers?: Record<string, string>;
}

export type Query = Record<string, string | number | boolean | null | undefined>;

export declare class ApiClient {
  constructor(baseUrl: string, options?: ApiClientOptions);
  request<T = any>(method: string, path: string, options?: { query?: Query; body?: unknown; headers?: Record<string, string> }): Promise<T>;
  health(): Promise<any>;
  live(): Promise<any>;
  ready(): Promise<any>;
  listTasks(query?: Query): Promise<any>;
  createTask(task: Partial<Task> & { name: string }): Promise<Task>;
  getTask(taskId: string): Promise<Task>;
  updateTask(taskId: string, changes: Partial<Task>): Promise<Task>;
  deleteTask(taskId: string, options?: { force?: boolean }): Promise<null>;
  listArtifacts(taskId: string, query?: Query): Promise<any>;
  uploadArtifact(taskId: string, artifact: { code: string; language?: string; [key: string]: unknown }, options?: { activate?: boolean }): Promise<Artifact>;
  getArtifact(taskId: string, version: number | string): Promise<Artifact>;
  activateArtifact(taskId: string, version: number | string, options?: { force?: boolean }): Promise<Artifact>;
  execute(taskId: string, request: ExecuteRequest): Promise<Execution>;
  executeBatch(taskId: string, request: { inputs: Json[]; [key: string]: unknown }): Promise<any>;
  listExecutions(taskId: string, query?: Query): Promise<any>;
  getExecution(executionId: string): Promise<Execution>;
  generate(taskId: string, options?: GenerateOptions): Promise<Generation>;
  getGeneration(generationId: string): Promise<Generation>;
  listGenerations(taskId: string, options?: { limit?: number }): Promise<{ items: Generation[] }>;
  /** Resolves once `completed` or `failed`; rejects with a `GenerationTimeoutError` after `timeoutMs` (120000). */
  waitForGeneration(generationId: string, options?: { timeoutMs?: number; intervalMs?: number; signal?: AbortSignal }): Promise<Generation>;
  listCases(taskId: string, options?: { limit?: number; cursor?: string | null }): Promise<CasePage>;
  addCases(taskId: string, cases: Iterable<CaseInput>): Promise<CasesAdded>;
  importCases(taskId: string, cases: string | Iterable<CaseInput>): Promise<CasesAdded>;
  deleteCase(taskId: string, caseId: string): Promise<null>;
  feedback(executionId: string, options: FeedbackOptions): Promise<FeedbackResult>;
  listValidations(taskId: string, options?: { limit?: number; cursor?: string | null; version?: number }): Promise<ValidationPage>;
  taskAccuracy(taskId: string): Promise<TaskAccuracy>;
  publishEvent(topic: string, type: string, data?: unknown): Promise<{ topic: string; cursor: string }>;
  topicEvents(topic: string, options?: { since?: string; limit?: number }): Promise<TopicEvents>;
  wsToken(request?: { scopes?: string[]; prefixes?: string[]; ttl_s?: number }): Promise<{ token: string; expires_at: number }>;
}

// ---------------------------------------------------------------- protocol pieces

export declare const CloseCode: Readonly<{
  NORMAL: 1000; GOING_AWAY: 1001; ABNORMAL: 1006; POLICY: 1008; TOO_BIG: 1009; INTERNAL: 1011;
  SERVICE_RESTART: 1012; UNAUTHORIZED: 4401; FORBIDDEN: 4403; SLOW_CONSUMER: 4408; RATE_LIMITED: 4429;
}>;

/** What the client does after a close with `code`. */
export declare function closeAction(code: number): 'reconnect' | 'stop';

export declare const DEFAULT_BACKOFF: Readonly<Required<BackoffOptions>>;
/** The delay before retry `attempt` (0-based): uniform in [0, min(maxMs, initialMs·factor^attempt)]. */
export declare function backoffDelay(attempt: number, options?: BackoffOptions, random?: () => number): number;
export declare function backoff(options?: BackoffOptions, random?: () => number): Generator<number, void, unknown>;

/** The sans-I/O protocol session (advanced: for writing another driver). */
export declare class Session {
  welcome: Welcome | null;
  receive(text: unknown): Array<{ kind: string; [key: string]: unknown }>;
  subscribe(topics: string[], since?: Record<string, string>): { ref: string | null; frame: string | null };
  unsubscribe(topics: string[]): { ref: string | null; frame: string | null };
  publish(topic: string, type: string, data: unknown, idempotencyKey?: string): { ref: string; frame: string };
  ping(): string;
  resubscribeFrames(maxBytes?: number): { ref: string; frame: string }[];
  connectionLost(): string[];
  cancel(ref: string): void;
  cursor(topic: string): string | null;
  isActive(topic: string): boolean;
  wanted(): string[];
}
