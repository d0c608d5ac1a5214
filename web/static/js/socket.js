// The WebSocket side of the protocol: one socket per tab, reconnected with
// backoff; inbox events acked (cumulatively) once handled, so a cut before
// that gets them again; sends kept until the server answers `sent`, and sent
// again with the same id after a reconnect (the id makes it idempotent).

const PING_EVERY = 25_000; // the server closes a socket silent for 90 s
const PONG_WAIT = 10_000; // no answer by then: the connection is dead
const MAX_BACKOFF = 30_000;

export class Socket {
  // handlers: frame(f) for every server frame, state(s) with s one of
  // 'connecting', 'online', 'offline', 'replaced'.
  constructor(api, handlers) {
    this.api = api;
    this.h = handlers;
    this.ws = null;
    this.state = 'offline';
    this.attempt = 0;
    this.retryTimer = 0;
    this.pingTimer = 0;
    this.pongTimer = 0;
    this.ackTimer = 0;
    this.handled = 0; // highest cursor handled, to ack
    this.acked = 0;
    this.outbox = new Map(); // send id -> frame, in insertion order
    this.stopped = true;
    this.nextId = 1;
    addEventListener('online', () => this.connectNow());
    addEventListener('offline', () => this.drop());
  }

  start() {
    this.stopped = false;
    this.connectNow();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.outbox.clear();
    this.h.outbox?.();
    this.handled = this.acked = 0;
    clearTimeout(this.ackTimer);
    this.ackTimer = 0;
    if (this.ws) {
      this.ws.onclose = this.ws.onmessage = this.ws.onopen = null;
      this.ws.close(1000);
    }
    this.ws = null;
    this.setState('offline');
  }

  setState(s) {
    if (this.state === s) return;
    this.state = s;
    this.h.state(s);
  }

  connectNow() {
    if (this.stopped || (this.ws && this.ws.readyState <= WebSocket.OPEN)) return;
    clearTimeout(this.retryTimer);
    this.open();
  }

  open() {
    if (this.opening) return;
    this.opening = true;
    this.dial().finally(() => { this.opening = false; });
  }

  async dial() {
    if (!this.api.token || this.stopped) return;
    this.setState('connecting');
    // An upgrade with a stale token is refused with HTTP 401, which a
    // page only sees as a failed socket: refresh first.
    if (this.api.expiresSoon() || this.needRefresh) {
      try {
        await this.api.refresh();
        this.needRefresh = false;
      } catch (e) {
        if (e.status !== 401) this.retry();
        return;
      }
    }
    if (this.stopped || this.ws) return;
    const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/v1/ws';
    // The token goes as a subprotocol: browsers cannot set headers on an
    // upgrade, and a URL would end up in access logs.
    const ws = new WebSocket(url, ['tern.v1', 'bearer.' + this.api.token]);
    this.ws = ws;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      ws.opened = true;
      this.attempt = 0;
      this.handled = this.acked = 0; // the server resends from the device's acked cursor
      this.setState('online');
      this.ping();
      for (const f of this.outbox.values()) ws.send(JSON.stringify(f));
    };
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return;
      this.alive();
      let f;
      try { f = JSON.parse(ev.data); } catch { return; }
      if (f.type === 'pong') return;
      if (f.type === 'sent' && this.outbox.delete(f.id)) this.h.outbox?.();
      if (f.type === 'error' && f.id && this.outbox.has(f.id)) {
        if (f.code === 'rate_limited') {
          this.resendLater(f.id, Math.max(1, f.retry_after || 1) * 1000);
          return;
        }
        if (!retryable(f.code)) {
          this.outbox.delete(f.id);
          this.h.outbox?.();
        } else this.resendLater(f.id, 2000);
      }
      try {
        this.h.frame(f);
      } finally {
        if (typeof f.cursor === 'number') this.ack(f.cursor);
      }
    };
    ws.onclose = (ev) => this.closed(ws, ev.code);
  }

  // resendLater sends an outbox frame again on the open socket (a server
  // that was briefly unavailable, a rate limit); a reconnect meanwhile
  // sends it anyway.
  resendLater(id, ms) {
    const frame = this.outbox.get(id);
    const ws = this.ws;
    setTimeout(() => {
      if (this.outbox.get(id) === frame && this.ws === ws && ws?.readyState === WebSocket.OPEN) ws.send(JSON.stringify(frame));
    }, ms);
  }

  // drop gives up on the socket at once: a dead network may take a long
  // time to let a closing handshake end.
  drop() {
    const ws = this.ws;
    if (!ws) return;
    ws.onclose = ws.onmessage = ws.onopen = null;
    try { ws.close(); } catch { /* already closing */ }
    this.closed(ws, 1006);
  }

  closed(ws, code) {
    if (this.ws !== ws) return;
    this.ws = null;
    clearTimeout(this.pingTimer);
    clearTimeout(this.pongTimer);
    this.pongTimer = 0;
    clearTimeout(this.ackTimer);
    this.ackTimer = 0;
    if (this.stopped) return;
    if (code === 4409) { // this device connected again in another tab
      this.setState('replaced');
      return;
    }
    this.setState('connecting');
    // A socket that never opened may have been refused for its token (the
    // browser hides the 401): the next try refreshes first.
    if (!ws.opened) this.needRefresh = true;
    if (code === 4401) {
      // The token expired or the device was revoked: refresh tells which.
      this.api.refresh().then(() => this.retry(0), (e) => { if (e.status !== 401) this.retry(); });
      return;
    }
    this.retry();
  }

  retry(delay) {
    if (delay === undefined) {
      const base = Math.min(MAX_BACKOFF, 500 * 2 ** this.attempt);
      delay = base / 2 + Math.random() * base / 2;
      this.attempt++;
    }
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.open(), delay);
    if (!navigator.onLine) this.setState('offline');
  }

  // ping beats every PING_EVERY while the socket is open, whatever else
  // flows: the server closes a socket that sent nothing for 90 s, and a
  // tab that only receives typing and presence sends nothing else.
  ping() {
    clearTimeout(this.pingTimer);
    this.pingTimer = setTimeout(() => {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;
      this.ws.send('{"type":"ping"}');
      if (!this.pongTimer) this.pongTimer = setTimeout(() => this.drop(), PONG_WAIT);
      this.ping();
    }, PING_EVERY);
  }

  // alive is any frame from the server: the connection works.
  alive() {
    clearTimeout(this.pongTimer);
    this.pongTimer = 0;
  }

  ack(cursor) {
    if (cursor > this.handled) this.handled = cursor;
    if (this.ackTimer) return;
    // One ack for a burst of events: acks are cumulative.
    this.ackTimer = setTimeout(() => {
      this.ackTimer = 0;
      if (this.handled > this.acked && this.ws?.readyState === WebSocket.OPEN) {
        this.ws.send(JSON.stringify({ type: 'ack', cursor: this.handled }));
        this.acked = this.handled;
      }
    }, 20);
  }

  // send queues a send frame (it gets an id) and returns it; it goes now if
  // the socket is open, else on the next connect.
  send(frame) {
    frame = { type: 'send', id: frame.id || newId(), ...frame };
    this.outbox.set(frame.id, frame);
    this.h.outbox?.();
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(frame));
    return frame;
  }

  // fire sends a frame that needs no answer kept (typing, read,
  // presence_sub); dropped while offline.
  fire(frame) {
    if (this.ws?.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }
}

// retryable errors leave a send in the outbox, for the next connect.
function retryable(code) { return code === 'unavailable' || code === 'internal'; }

function newId() {
  const b = new Uint8Array(12);
  crypto.getRandomValues(b);
  return 'w' + Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}
