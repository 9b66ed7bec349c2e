// What mailed links open: FRONTEND_URL/reset-password#token=… and FRONTEND_URL/verify-email#token=…
// (an email change's confirmation too), and the form that asks for a reset link. The token is
// the proof: none of these needs a login.

import { ApiError } from "./api.js";
import { $, clone, mount, notify, onSubmit } from "./ui.js";

const FORGOT_ROUTE = "forgot-password";
const MAILED_PAGES = ["reset-password", "verify-email"];
/** Routes for anyone, logged in or not: a mailed link may be opened in either state. */
export const LINK_ROUTES = [FORGOT_ROUTE, ...MAILED_PAGES];

/** The token of the mailed link that opened this page, by route ({} when none did). The address
 * bar then shows the app's own address with the link's route, and no token. */
export function takeLinkToken() {
  const page = location.pathname.split("/").pop();
  if (!MAILED_PAGES.includes(page)) return {};
  const token = new URLSearchParams(location.hash.slice(1)).get("token");
  // Out of the address bar at once, so out of the history, bookmarks and a shared screen too;
  // the token lives in this page's memory only.
  const base = new URL("./", location.href).pathname;
  history.replaceState(null, "", `${base}${location.search}#/${page}`);
  return token ? { [page]: token } : {};
}

/** A failure that leaves the link unusable: its token is wrong, used or expired, or (an email
 * change) the address was taken meanwhile, which used the token up as well. */
function spendsTheLink(failure) {
  return failure instanceof ApiError && ("token" in failure.fields || failure.status === 409);
}

export class AccountLinks {
  constructor(api, tokens, { loggedIn, onPasswordReset }) {
    this.api = api;
    this.tokens = tokens;
    this.loggedIn = loggedIn;
    this.onPasswordReset = onPasswordReset;
  }

  show(name, { focus = true } = {}) {
    const view = clone(`${name}-view`);
    const form = $("form", view);
    if (name === FORGOT_ROUTE) onSubmit(form, (f) => this.forgot(f));
    else if (!this.tokens[name]) this.noLink(name, view);
    else if (name === "reset-password") onSubmit(form, (f) => this.reset(f, view));
    else onSubmit(form, () => this.verify(view));
    mount(view, { focus });
  }

  async forgot(form) {
    const json = { email: form.elements.email.value.trim() };
    const { message } = await this.api.request("POST", "/users/password/forgot", { json, auth: false });
    notify(message); // the same whether or not the address has an account
  }

  async reset(form, view) {
    const json = { token: this.tokens["reset-password"], new_password: form.elements.new_password.value };
    const { message } = await this.spend("reset-password", view, () =>
      this.api.request("POST", "/users/password/reset", { json, auth: false }),
    );
    this.onPasswordReset(message); // every session ended: the user logs in with the new password
  }

  // A click, not the page's load, spends the token: a mail scanner that opens links must not.
  async verify(view) {
    const json = { token: this.tokens["verify-email"] };
    const { message } = await this.spend("verify-email", view, () =>
      this.api.request("POST", "/users/email/verify", { json, auth: false }),
    );
    $("form", view).hidden = true;
    this.showNext(view).focus();
    notify(message); // verified, or (an email change) changed
  }

  /** Send the link's token; the link is done with when it worked or can no longer work. */
  async spend(name, view, send) {
    try {
      const result = await send();
      delete this.tokens[name];
      return result;
    } catch (failure) {
      if (spendsTheLink(failure)) {
        this.noLink(name, view);
        $("[data-slot=no-link] button, [data-slot=next] button", view).focus(); // the form has gone
      }
      throw failure; // shown by the form
    }
  }

  /** No usable token (the page was reloaded, or the link was bad): say where a new one comes from. */
  noLink(name, view) {
    delete this.tokens[name];
    $("form", view).hidden = true;
    $("[data-slot=no-link]", view).hidden = false;
    if (name === "verify-email") this.showNext(view);
  }

  /** The way on from the verification page: the books when logged in, else the login form. */
  showNext(view) {
    const next = $("[data-slot=next]", view);
    next.hidden = false;
    const button = $("button", next);
    if (this.loggedIn()) {
      button.dataset.route = "books";
      button.textContent = "Go to your books";
    }
    return button;
  }
}
