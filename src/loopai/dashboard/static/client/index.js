// @loopai/client: the public surface. Everything a user needs is exported here and nowhere else;
// test/exports.test.js pins this list.

export { ApiClient, ApiError } from './api.js';
export { backoff, backoffDelay, DEFAULT_BACKOFF } from './backoff.js';
export { HubClosedError, HubError, HubProtocolError, HubRequestError, LoopaiError } from './errors.js';
export { HubClient } from './hub.js';
export { CloseCode, closeAction, Session } from './session.js';
export { isEvent, Subscription } from './subscription.js';
