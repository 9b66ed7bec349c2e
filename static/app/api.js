// The Book Library API as the app sees it: the JSON envelope, the access token, and the
// refresh token in either of the server's two modes.
//
// Token mode: the refresh token comes in the JSON body. It is kept in sessionStorage so that
// reloading the tab keeps the user logged in; it is never put in localStorage, so it leaves
// with the tab and is not shared with other tabs. Any script on the page could read it, which
// is why the page allows only its own scripts (see the README's browser section); cookie mode
// keeps it out of reach of scripts altogether.
//
// Cookie mode (REFRESH_TOKEN_COOKIE=true): the refresh token is an HttpOnly cookie the app
// never sees. Refreshing needs the CSRF token in the X-CSRF-Token header; the app takes it from
// the login and refresh bodies, because from another origin the csrf_token cookie is not
// readable. It is kept in localStorage, like the cookie it matches, so every tab shares it.
//
// The access token lives in memory only and is renewed shortly before it expires.

const REFRESH_KEY = "book-library.refresh-token";
const CSRF_KEY = "book-library.csrf-token";

/** A failure the user should read: the API's envelope, or a network problem. */
export class ApiError extends Error {
  constructor(message, { status = 0, error = null, retryAfter = null, challenge = null } = {}) {
    super(message);
    this.status = status;
    // A string (the HTTP reason) or, for 400, an object of field messages.
    this.error = error;
    this.retryAfter = retryAfter;
    // WWW-Authenticate: a 401 about the access token says "Bearer …"; a wrong password says nothing.
    this.challenge = challenge;
  }

  get tokenRefused() {
    return this.status === 401 && /^Bearer\b/.test(this.challenge || "");
  }

  get fields() {
    return this.error && typeof this.error === "object" ? this.error : {};
  }
}

/** The refresh token or session is gone: the user must log in again. */
export class SessionEnded extends ApiError {}

/** The API base URL: the one config.js names, else this page's origin. Nothing in the page's
 * address or storage can change it: the app sends passwords and tokens there. */
export function apiBase(configured) {
  const raw = configured || location.origin;
  let url;
  try {
    url = new URL(raw, location.href);
  } catch {
    throw new ApiError(`The API address "${raw}" is not a URL.`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new ApiError(`The API address "${raw}" must start with http:// or https://.`);
  }
  return url.href.replace(/\/+$/, "");
}

/** What the user typed where the second factor is asked for, as the API takes it: six digits
 * are the authenticator app's code, anything else a recovery code. */
export function secondFactor(value) {
  const typed = value.trim();
  return /^\d{6}$/.test(typed) ? { code: typed } : { recovery_code: typed };
}

export class Api {
  constructor(base, { onSessionEnded = () => {} } = {}) {
    this.base = base;
    this.crossOrigin = new URL(base).origin !== location.origin;
    this.cookieMode = false;
    this.accessToken = null;
    this.refreshTimer = null;
    this.refreshing = null;
    this.onSessionEnded = onSessionEnded;
  }

  /** Ask the API which mode it is in; fails with a clear message when it cannot be reached. */
  async connect() {
    const banner = await this.request("GET", "/", { auth: false });
    this.cookieMode = Boolean(banner.data && banner.data.refresh_token_cookie);
  }

  // Cookies only travel across origins when asked for, and the API allows it only in cookie mode.
  get credentials() {
    return this.cookieMode ? "include" : "same-origin";
  }

  get loggedIn() {
    return this.accessToken !== null;
  }

  /** Whether a reload can resume a session without the password. */
  get canResume() {
    return Boolean(this.cookieMode ? localStorage.getItem(CSRF_KEY) : sessionStorage.getItem(REFRESH_KEY));
  }

  // --- requests ------------------------------------------------------------------------

  /** One JSON request; an access-token failure is retried once after a refresh. */
  async request(method, path, { json, auth = true } = {}) {
    const send = () => {
      const headers = { Accept: "application/json" };
      if (json !== undefined) headers["Content-Type"] = "application/json";
      if (auth) headers.Authorization = `Bearer ${this.accessToken}`;
      return this.fetchEnvelope(method, path, {
        headers,
        body: json === undefined ? undefined : JSON.stringify(json),
      });
    };
    return auth ? this.withFreshToken(send) : send();
  }

  /** A multipart request with upload progress (fetch cannot report it; XMLHttpRequest can). */
  upload(method, path, formData, onProgress = () => {}) {
    const send = () =>
      new Promise((resolve, reject) => {
        const xhr = new XMLHttpRequest();
        xhr.open(method, this.base + path);
        xhr.withCredentials = this.cookieMode;
        xhr.setRequestHeader("Accept", "application/json");
        xhr.setRequestHeader("Authorization", `Bearer ${this.accessToken}`);
        xhr.upload.onprogress = (event) => {
          if (event.lengthComputable) onProgress(event.loaded / event.total);
        };
        xhr.onload = () => {
          onProgress(1);
          resolve(this.readEnvelope(xhr.status, xhr.responseText, (name) => xhr.getResponseHeader(name)));
        };
        xhr.onerror = () => reject(this.unreachable());
        xhr.send(formData);
      }).then((result) => (result instanceof ApiError ? Promise.reject(result) : result));
    return this.withFreshToken(send);
  }

  async fetchEnvelope(method, path, init) {
    let response;
    try {
      response = await fetch(this.base + path, { method, credentials: this.credentials, ...init });
    } catch {
      throw this.unreachable();
    }
    const result = this.readEnvelope(response.status, await response.text(), (name) => response.headers.get(name));
    if (result instanceof ApiError) throw result;
    return result;
  }

  /** The envelope of a success, or an ApiError for a failure (returned, not thrown). */
  readEnvelope(status, text, header) {
    if (status === 204) return { message: "", data: null };
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      // A proxy's HTML error page, say: described below by its status.
    }
    if (status >= 200 && status < 300 && body) return body;
    const message = (body && body.message) || `The API answered with status ${status}.`;
    const retryAfter = header("Retry-After");
    return new ApiError(message, {
      status,
      error: body ? body.error : null,
      retryAfter: retryAfter && /^\d+$/.test(retryAfter) ? Number(retryAfter) : null,
      challenge: header("WWW-Authenticate"),
    });
  }

  unreachable() {
    const origin = this.crossOrigin ? ` and that its CORS_ORIGINS lists ${location.origin}` : "";
    return new ApiError(`Cannot reach the API at ${this.base}. Check that it is running${origin}.`);
  }

  async withFreshToken(send) {
    if (this.refreshing) await this.refreshing.catch(() => {});
    try {
      return await send();
    } catch (failure) {
      // The token expired while the page slept, or the server restarted with a new lifetime:
      // one refresh and one retry. A second 401 means the session itself is over. A 401 without
      // a Bearer challenge is a wrong password: sending it again would count it twice.
      if (!(failure instanceof ApiError) || !failure.tokenRefused || !this.canResume) throw failure;
      await this.refresh();
      return send();
    }
  }

  // --- sessions ------------------------------------------------------------------------

  /** Log in; resolves to the envelope's data (tokens, or an MFA challenge). */
  async login(email, password) {
    const { data } = await this.request("POST", "/users/login", { json: { email, password }, auth: false });
    if (!data.mfa_required) this.startSession(data);
    return data;
  }

  /** The second step of a login: `factor` is { code } or { recovery_code }. */
  async loginWithSecondFactor(ticket, factor) {
    const json = { mfa_ticket: ticket, ...factor };
    const { data } = await this.request("POST", "/users/login/mfa", { json, auth: false });
    this.startSession(data);
    return data;
  }

  /** Log in with a passkey: the browser's answer (see passkeys.js) to /users/login/passkey/options. */
  async loginWithPasskey(credential) {
    const { data } = await this.request("POST", "/users/login/passkey", { json: { credential }, auth: false });
    this.startSession(data);
    return data;
  }

  /** New tokens for the refresh token (or cookie). Concurrent callers share one request,
   * and a session that has ended is reported once, to onSessionEnded. */
  refresh() {
    if (!this.refreshing) {
      this.refreshing = this.sendRefresh()
        .catch((failure) => {
          if (failure instanceof SessionEnded) this.onSessionEnded(failure);
          throw failure;
        })
        .finally(() => {
          this.refreshing = null;
        });
    }
    return this.refreshing;
  }

  /** On page load: pick up the session this tab (or, in cookie mode, this browser) had. */
  resume() {
    return this.sendRefresh();
  }

  async sendRefresh() {
    const init = { headers: { Accept: "application/json" } };
    if (this.cookieMode) {
      init.headers["X-CSRF-Token"] = localStorage.getItem(CSRF_KEY) || "";
    } else {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify({ refresh_token: sessionStorage.getItem(REFRESH_KEY) || "" });
    }
    let data;
    try {
      ({ data } = await this.fetchEnvelope("POST", "/users/token/refresh", init));
    } catch (failure) {
      if (failure instanceof ApiError && [401, 403].includes(failure.status)) {
        this.forget();
        throw new SessionEnded(this.endedMessage(failure), { status: failure.status });
      }
      throw failure;
    }
    this.startSession(data);
    return data;
  }

  endedMessage(failure) {
    if (this.cookieMode && this.crossOrigin && failure.message === "Refresh token is missing.") {
      // The browser did not send the cookie: the page and the API are on different sites.
      return (
        `Your browser did not send the refresh cookie to ${this.base}. In cookie mode the app ` +
        "and the API must be on the same site (see the README); please log in again."
      );
    }
    return `Your session has ended (${failure.message}) Please log in again.`;
  }

  startSession(data) {
    this.accessToken = data.token;
    if (data.refresh_token) sessionStorage.setItem(REFRESH_KEY, data.refresh_token);
    if (data.csrf_token) localStorage.setItem(CSRF_KEY, data.csrf_token);
    this.scheduleRefresh(data.expires_in);
  }

  /** Renew a minute before expiry (or at four fifths of a short lifetime), without a request failing first. */
  scheduleRefresh(seconds) {
    clearTimeout(this.refreshTimer);
    const lead = Math.max(seconds - 60, seconds * 0.8);
    this.refreshTimer = setTimeout(() => this.refresh().catch(() => {}), lead * 1000);
  }

  async logout(everywhere = false) {
    try {
      await this.request("POST", everywhere ? "/users/logout-all" : "/users/logout");
    } finally {
      this.forget();
    }
  }

  /** Drop every token this tab holds. */
  forget() {
    clearTimeout(this.refreshTimer);
    this.accessToken = null;
    sessionStorage.removeItem(REFRESH_KEY);
    localStorage.removeItem(CSRF_KEY);
  }
}
