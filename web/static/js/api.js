// The REST side of the protocol (docs/protocol.md). The access token lives
// only in memory; the refresh token is an HttpOnly cookie that only the
// /v1/auth/web endpoints see, so a script (ours or an injected one) can
// never read it, and a reload signs in again through the cookie.

export class ApiError extends Error {
  constructor(status, code, message, retryAfter) {
    super(message || code);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter || 0;
  }
}

const webHeader = { 'X-Tern-Web': '1' };

export class Api {
  constructor() {
    this.session = null; // {user_id, device_id, access_token, expires_in}
    this.refreshing = null;
    this.timer = 0;
    this.onSignedOut = () => {};
  }

  get signedIn() { return this.session !== null; }
  get userId() { return this.session?.user_id; }
  get deviceId() { return this.session?.device_id; }
  get token() { return this.session?.access_token; }

  async raw(method, path, body, headers = {}) {
    const init = { method, headers: { ...headers }, credentials: 'same-origin', cache: 'no-store' };
    if (body !== undefined) {
      if (body instanceof Blob || body instanceof FormData) {
        init.body = body;
      } else {
        init.headers['Content-Type'] = 'application/json';
        init.body = JSON.stringify(body);
      }
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, 'network', 'The server cannot be reached.');
    }
    if (res.status === 204) return null;
    const text = await res.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
    if (!res.ok) {
      const e = data?.error || {};
      throw new ApiError(res.status, e.code || 'http_' + res.status, e.message || res.statusText, e.retry_after);
    }
    return data;
  }

  // call is an authenticated request; a 401 refreshes the token once.
  async call(method, path, body) {
    if (!this.session) throw new ApiError(401, 'unauthorized', 'Not signed in.');
    try {
      return await this.raw(method, path, body, { Authorization: 'Bearer ' + this.token });
    } catch (e) {
      if (e.status !== 401) throw e;
      await this.refresh();
      return this.raw(method, path, body, { Authorization: 'Bearer ' + this.token });
    }
  }

  requestCode(phone) { return this.raw('POST', '/v1/auth/code', { phone }); }

  async verify(phone, code) {
    const s = await this.raw('POST', '/v1/auth/web/verify',
      { phone, code, device_name: deviceName(), platform: 'web' }, webHeader);
    this.setSession(s);
    return s;
  }

  // resume signs in from the cookie a verify left; false if there is none.
  async resume() {
    try {
      await this.refresh();
      return true;
    } catch (e) {
      if (e.status === 401) return false;
      throw e;
    }
  }

  // refresh gets a new access token; concurrent callers share one request
  // (the server would answer them alike anyway, within its 30 s grace).
  refresh() {
    if (!this.refreshing) {
      this.refreshing = this.raw('POST', '/v1/auth/web/refresh', undefined, webHeader)
        .then((s) => { this.setSession(s); return s; })
        .catch((e) => {
          if (e.status === 401) this.signedOut();
          throw e;
        })
        .finally(() => { this.refreshing = null; });
    }
    return this.refreshing;
  }

  setSession(s) {
    this.session = s;
    this.expiresAt = Date.now() + s.expires_in * 1000;
    // Well before expiry, so a socket is never closed for an old token
    // while the tab sleeps only briefly.
    this.schedule(Math.max(10, s.expires_in * 0.75) * 1000, 0);
  }

  // schedule refreshes after ms; a failure that is not a sign-out (no
  // network yet after a laptop woke) tries again with backoff.
  schedule(ms, failures) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.refresh().catch((e) => {
        if (e.status !== 401 && this.session) this.schedule(Math.min(60_000, 2000 * 2 ** failures), failures + 1);
      });
    }, ms);
  }

  // expiresSoon is whether the access token is about to expire (or did,
  // while the tab slept).
  expiresSoon() { return !this.expiresAt || Date.now() > this.expiresAt - 30_000; }

  // logout signs this browser out; on a network failure it throws and
  // keeps the session (the cookie would sign a reload back in).
  async logout() {
    try {
      await this.raw('POST', '/v1/auth/web/logout', undefined,
        { ...webHeader, Authorization: 'Bearer ' + this.token });
    } catch (e) {
      if (e.status !== 401) throw e;
    }
    this.signedOut();
  }

  signedOut() {
    const was = this.session !== null;
    this.session = null;
    clearTimeout(this.timer);
    if (was) this.onSignedOut();
  }
}

function deviceName() {
  const ua = navigator.userAgent;
  const browser = /Edg\//.test(ua) ? 'Edge' : /Firefox\//.test(ua) ? 'Firefox'
    : /Chrome\//.test(ua) ? 'Chrome' : /Safari\//.test(ua) ? 'Safari' : 'Browser';
  const os = /Android/.test(ua) ? 'Android' : /iPhone|iPad/.test(ua) ? 'iOS'
    : /Mac OS X/.test(ua) ? 'macOS' : /Windows/.test(ua) ? 'Windows' : /Linux/.test(ua) ? 'Linux' : '';
  return os ? `${browser} on ${os}` : browser;
}
