// Where a WebSocket comes from and how credentials ride on it, in browsers and in Node.
// Nothing here touches Node built-ins at load time, so the module runs untouched in a browser.

/**
 * The WebSocket class to use: the caller's, else the platform's, else the `ws` package (Node 20
 * has no global WebSocket). `ws` is imported only then, so browsers never ask for it.
 * @param {unknown} [given]
 */
export async function resolveWebSocket(given) {
  if (given) return given;
  if (typeof globalThis.WebSocket === 'function') return globalThis.WebSocket;
  try {
    const mod = await import('ws');
    return mod.WebSocket ?? mod.default;
  } catch (cause) {
    throw new Error('no WebSocket available: install the "ws" package or pass options.WebSocket', { cause });
  }
}

/**
 * True for the `ws` package's class, which (unlike browsers) can send request headers; told
 * apart by its `terminate()`, which no browser WebSocket has.
 */
export function canSendHeaders(WebSocketClass) {
  return typeof WebSocketClass?.prototype?.terminate === 'function';
}

/**
 * The socket URL for a hub address: `http(s)` becomes `ws(s)`, a bare origin gets `/ws`, and a
 * token meant for the query string is added as `?token=`.
 * @param {string} address
 * @param {string|null} queryToken
 */
export function socketUrl(address, queryToken = null) {
  const base = typeof location !== 'undefined' ? location.href : undefined;
  const url = new URL(address, base);
  if (url.protocol === 'http:') url.protocol = 'ws:';
  else if (url.protocol === 'https:') url.protocol = 'wss:';
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') {
    throw new TypeError(`hub URL must be ws(s):// or http(s)://, got ${url.protocol}`);
  }
  if (url.pathname === '' || url.pathname === '/') url.pathname = '/ws';
  if (queryToken) url.searchParams.set('token', queryToken);
  return url.toString();
}

/** The token for one connection attempt: a string, or a function returning one (or a promise). */
export async function resolveToken(token) {
  const value = typeof token === 'function' ? await token() : token;
  if (value === undefined || value === null || value === '') return null;
  if (typeof value !== 'string') throw new TypeError('token must be a string');
  return value;
}

/**
 * Open a socket. With `ws`, the token goes in `Authorization: Bearer`; browsers cannot set
 * headers on a WebSocket, so there it goes in the query string (`tokenIn` can force either).
 */
export function openSocket(WebSocketClass, address, token, tokenIn = 'auto') {
  const header = tokenIn === 'header' || (tokenIn === 'auto' && canSendHeaders(WebSocketClass));
  const url = socketUrl(address, header ? null : token);
  const socket = header && token
    ? new WebSocketClass(url, { headers: { Authorization: `Bearer ${token}` } })
    : new WebSocketClass(url);
  // `ws` throws an 'error' nobody listens to; a socket dropped mid-handshake still emits one
  // after the client has moved on, so one listener stays for the socket's whole life.
  socket.addEventListener('error', () => {});
  return socket;
}

/**
 * Drop a socket without waiting for the peer: `terminate()` where there is one (`ws`), else a
 * close frame the peer may never answer. Listeners must be detached first.
 */
export function dropSocket(socket, code = 4000, reason = '') {
  try {
    if (typeof socket.terminate === 'function') socket.terminate();
    else socket.close(code, reason);
  } catch {
    // Already closed or never opened: nothing left to release.
  }
}

/** Close politely and resolve once closed, or after `timeoutMs` by dropping the socket. */
export function closeSocket(socket, code = 1000, reason = '', timeoutMs = 1000) {
  return new Promise((resolve) => {
    if (socket.readyState === 3) {
      resolve();
      return;
    }
    const timer = setTimeout(() => {
      dropSocket(socket, code, reason);
      resolve();
    }, timeoutMs);
    socket.addEventListener('close', () => {
      clearTimeout(timer);
      resolve();
    });
    try {
      socket.close(code, reason);
    } catch {
      clearTimeout(timer);
      dropSocket(socket);
      resolve();
    }
  });
}
