// A small REST helper on `fetch` for the hub's HTTP API (`/api/v1/...`). Every non-2xx answer
// becomes an ApiError carrying the server's `code`, `message` and `trace_id`.

import { LoopaiError } from './errors.js';

/** An HTTP API error: `status` 0 means no answer at all (network, timeout). */
export class ApiError extends LoopaiError {
  constructor({ status, code, message, details = null, traceId = null, retryAfter = null, cause }) {
    super(message, cause === undefined ? undefined : { cause });
    this.status = status;
    this.code = code;
    this.details = details;
    this.traceId = traceId;
    /** Seconds the server asked to wait (503, 429), or null. */
    this.retryAfter = retryAfter;
  }
}

const enc = encodeURIComponent;

const sleep = (ms, signal) => new Promise((resolve, reject) => {
  if (signal?.aborted) {
    reject(signal.reason);
    return;
  }
  const timer = setTimeout(done, ms);
  function done() {
    signal?.removeEventListener('abort', abort);
    resolve();
  }
  function abort() {
    clearTimeout(timer);
    reject(signal.reason);
  }
  signal?.addEventListener('abort', abort, { once: true });
});

/** JSON Lines text as it is, or each `{input, output}` object as one line. */
function jsonl(cases) {
  if (typeof cases === 'string') return cases;
  return Array.from(cases, (c) => `${JSON.stringify(c)}\n`).join('');
}

function withQuery(path, query) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value !== undefined && value !== null) params.set(key, String(value));
  }
  const text = params.toString();
  return text ? `${path}?${text}` : path;
}

async function errorFrom(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // Not JSON (a proxy's HTML page, say): the status line is all there is.
  }
  const retry = Number.parseFloat(response.headers.get('retry-after') ?? '');
  return new ApiError({
    status: response.status,
    code: typeof body?.code === 'string' ? body.code : `http_${response.status}`,
    message: typeof body?.message === 'string' ? body.message : response.statusText || `HTTP ${response.status}`,
    details: body?.details ?? null,
    traceId: body?.trace_id ?? response.headers.get('x-request-id'),
    retryAfter: Number.isFinite(retry) ? retry : null,
  });
}

/**
 * The hub's REST API. `baseUrl` is the hub's origin (`http://127.0.0.1:8000`); `token` an API
 * key (string, or a function returning one); `fetch` defaults to the global one.
 */
export class ApiClient {
  constructor(baseUrl, { token = null, fetch: fetchImpl = null, timeoutMs = 30_000, headers = {} } = {}) {
    const base = typeof location !== 'undefined' ? location.href : undefined;
    this.baseUrl = new URL(baseUrl, base).toString().replace(/\/+$/, '');
    this.token = token;
    this.timeoutMs = timeoutMs;
    this.headers = headers;
    this._fetch = fetchImpl ?? globalThis.fetch.bind(globalThis);
  }

  /**
   * One request; resolves with the decoded JSON body (null for 204), throws ApiError.
   * @param {string} method
   * @param {string} path under the origin, e.g. `/api/v1/tasks`
   * @param {{query?: object, body?: unknown, headers?: object}} [options]
   */
  async request(method, path, { query, body, headers } = {}) {
    const token = typeof this.token === 'function' ? await this.token() : this.token;
    const init = {
      method,
      headers: { Accept: 'application/json', ...this.headers, ...headers },
      signal: AbortSignal.timeout(this.timeoutMs),
    };
    if (token) init.headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await this._fetch(`${this.baseUrl}${withQuery(path, query)}`, init);
    } catch (cause) {
      const timeout = cause?.name === 'TimeoutError';
      throw new ApiError({
        status: 0,
        code: timeout ? 'timeout' : 'network_error',
        message: timeout ? `no answer within ${this.timeoutMs} ms` : `request failed: ${cause?.message ?? cause}`,
        cause,
      });
    }
    if (!response.ok) throw await errorFrom(response);
    if (response.status === 204) return null;
    const text = await response.text();
    return text ? JSON.parse(text) : null;
  }

  // ---- health
  health() { return this.request('GET', '/api/v1/health'); }
  live() { return this.request('GET', '/api/v1/health/live'); }
  ready() { return this.request('GET', '/api/v1/health/ready'); }

  // ---- tasks
  listTasks(query = {}) { return this.request('GET', '/api/v1/tasks', { query }); }
  createTask(task) { return this.request('POST', '/api/v1/tasks', { body: task }); }
  getTask(taskId) { return this.request('GET', `/api/v1/tasks/${enc(taskId)}`); }
  updateTask(taskId, changes) { return this.request('PATCH', `/api/v1/tasks/${enc(taskId)}`, { body: changes }); }
  deleteTask(taskId, { force = false } = {}) {
    return this.request('DELETE', `/api/v1/tasks/${enc(taskId)}`, { query: force ? { force: true } : {} });
  }

  // ---- program artifacts
  listArtifacts(taskId, query = {}) {
    return this.request('GET', `/api/v1/tasks/${enc(taskId)}/artifacts`, { query });
  }
  uploadArtifact(taskId, artifact, { activate = false } = {}) {
    return this.request('POST', `/api/v1/tasks/${enc(taskId)}/artifacts`, {
      body: artifact,
      query: activate ? { activate: true } : {},
    });
  }
  getArtifact(taskId, version) {
    return this.request('GET', `/api/v1/tasks/${enc(taskId)}/artifacts/${enc(version)}`);
  }
  activateArtifact(taskId, version, { force = false } = {}) {
    return this.request('POST', `/api/v1/tasks/${enc(taskId)}/artifacts/${enc(version)}/activate`, {
      query: force ? { force: true } : {},
    });
  }

  // ---- execution
  execute(taskId, request) {
    return this.request('POST', `/api/v1/tasks/${enc(taskId)}/execute`, { body: request });
  }
  executeBatch(taskId, request) {
    return this.request('POST', `/api/v1/tasks/${enc(taskId)}/execute/batch`, { body: request });
  }
  listExecutions(taskId, query = {}) {
    return this.request('GET', `/api/v1/tasks/${enc(taskId)}/executions`, { query });
  }
  getExecution(executionId) {
    return this.request('GET', `/api/v1/executions/${enc(executionId)}`);
  }

  // ---- the loop: generation jobs
  /** Start generating a program: resolves with the job (`queued`/`running`), HTTP 202. */
  generate(taskId, { backend, activate } = {}) {
    const body = {};
    if (backend != null) body.backend = backend;
    if (activate != null) body.activate = activate;
    return this.request('POST', `/api/v1/tasks/${enc(taskId)}/generate`, { body });
  }
  getGeneration(generationId) {
    return this.request('GET', `/api/v1/generations/${enc(generationId)}`);
  }
  /** A task's generation jobs, newest first: `{items}`. */
  listGenerations(taskId, { limit } = {}) {
    return this.request('GET', `/api/v1/tasks/${enc(taskId)}/generations`, { query: { limit } });
  }
  /**
   * Polls a job until it is `completed` or `failed` and resolves with it (check `status`);
   * rejects with a LoopaiError named `TimeoutError` (code `timeout`, `generation`: the last
   * state seen) when it is still going after `timeoutMs`, or with `signal`'s reason.
   */
  async waitForGeneration(generationId, { timeoutMs = 120_000, intervalMs = 250, signal } = {}) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      signal?.throwIfAborted();
      const job = await this.getGeneration(generationId);
      if (job.status === 'completed' || job.status === 'failed') return job;
      const left = deadline - Date.now();
      if (left <= 0) {
        const err = new LoopaiError(`generation ${generationId} still ${job.status} after ${timeoutMs} ms`);
        err.name = 'TimeoutError';
        err.code = 'timeout';
        err.generation = job;
        throw err;
      }
      await sleep(Math.min(intervalMs, left), signal);
    }
  }

  // ---- the loop: cases
  /** A task's labelled cases: `{items, total, next_cursor}`. */
  listCases(taskId, { limit, cursor } = {}) {
    return this.request('GET', `/api/v1/tasks/${enc(taskId)}/cases`, { query: { limit, cursor } });
  }
  /** `cases`: `[{input, output, source?}]`; a known input gets its output replaced. `{added, total}`. */
  addCases(taskId, cases) {
    return this.request('POST', `/api/v1/tasks/${enc(taskId)}/cases`, { body: { cases: Array.from(cases) } });
  }
  /** JSON Lines text, or an iterable of `{input, output}` objects sent as JSON Lines. `{added, total}`. */
  importCases(taskId, cases) {
    return this.request('POST', `/api/v1/tasks/${enc(taskId)}/cases/import`, { body: { jsonl: jsonl(cases) } });
  }
  deleteCase(taskId, caseId) {
    return this.request('DELETE', `/api/v1/tasks/${enc(taskId)}/cases/${enc(caseId)}`);
  }

  // ---- the loop: feedback, validations, accuracy
  /**
   * What was right for an execution: `{expectedOutput}` (null is a value too), or
   * `{correct: true}` to confirm its output. Resolves `{case, validation, already_validated}`.
   */
  feedback(executionId, { expectedOutput, correct } = {}) {
    const body = {};
    if (expectedOutput !== undefined) body.expected_output = expectedOutput;
    if (correct != null) body.correct = correct;
    return this.request('POST', `/api/v1/executions/${enc(executionId)}/feedback`, { body });
  }
  /** A task's validations, newest first: `{items, next_cursor}`. */
  listValidations(taskId, { limit, cursor, version } = {}) {
    return this.request('GET', `/api/v1/tasks/${enc(taskId)}/validations`, { query: { limit, cursor, version } });
  }
  /** Validated accuracy per version with Wilson intervals: `{task_id, target, window, versions}`. */
  taskAccuracy(taskId) {
    return this.request('GET', `/api/v1/tasks/${enc(taskId)}/accuracy`);
  }

  // ---- topics and connection tokens
  publishEvent(topic, type, data = null) {
    return this.request('POST', `/api/v1/topics/${enc(topic)}/events`, { body: { type, data } });
  }
  topicEvents(topic, { since, limit } = {}) {
    return this.request('GET', `/api/v1/topics/${enc(topic)}/events`, { query: { since, limit } });
  }
  /** A short-lived token for a browser WebSocket (`?token=`), narrowed to `scopes`/`prefixes`. */
  wsToken(request = {}) {
    return this.request('POST', '/api/v1/auth/ws-token', { body: request });
  }
}
