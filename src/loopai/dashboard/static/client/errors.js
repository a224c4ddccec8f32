// The client's error tree, in one place: everything it throws or reports is a LoopaiError.

/** Root of every error this package throws or reports. */
export class LoopaiError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A hub connection problem; `code` is a short stable string. */
export class HubError extends LoopaiError {
  /**
   * @param {string} message
   * @param {{code?: string, cause?: unknown}} [options]
   */
  constructor(message, { code = 'hub_error', cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.code = code;
  }
}

/** The server answered a request (or reported a problem) with an `error` message. */
export class HubRequestError extends HubError {
  /** @param {{code: string, message: string, ref?: string|null, topic?: string|null}} error */
  constructor(error) {
    super(error.topic ? `${error.topic}: ${error.message}` : error.message, { code: error.code });
    this.ref = error.ref ?? null;
    this.topic = error.topic ?? null;
  }
}

/** The server sent something the protocol does not allow; the client dropped it and went on. */
export class HubProtocolError extends HubError {
  constructor(problem, frame) {
    super(`protocol error: ${problem}`, { code: 'protocol_error' });
    this.frame = frame;
  }
}

/**
 * The client stopped for good: closed by its owner, refused by the server (4401, 4403, 1008,
 * 1009) or out of reconnect attempts. `closeCode` and `reason` say why.
 */
export class HubClosedError extends HubError {
  constructor(message, { code = 'closed', closeCode = null, reason = '' } = {}) {
    super(message, { code });
    this.closeCode = closeCode;
    this.reason = reason;
  }
}
