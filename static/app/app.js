// The Book Library reference app: routes, the login (password or passkey), sign-up and second-factor
// forms, and the header. No build step: the browser loads these ES modules as they are.

import { Api, ApiError, apiBase } from "./api.js";
import { BooksView } from "./books.js";
import { config } from "./config.js";
import { AccountLinks, LINK_ROUTES, takeLinkToken } from "./links.js";
import { browserPasskey } from "./passkeys.js";
import { SessionsView } from "./sessions.js";
import { SettingsView } from "./settings.js";
import { TokensView } from "./tokens.js";
import { $, alertText, clearFieldErrors, clearMessages, clone, mount, notify, onSubmit, showError, whileBusy } from "./ui.js";

// Routes for the logged-out only; LINK_ROUTES are for anyone.
const PUBLIC_ROUTES = ["login", "signup", "mfa"];

let api;
let books;
let links;
let sessions;
let settings;
let tokens;
let user = null;
let mfaTicket = null;
let firstRender = true;
// What the next view says when it opens ({ notice, alert }): each view starts with its own
// messages only, never the last view's.
let carried = {};

function route() {
  return location.hash.replace(/^#\/?/, "") || "books";
}

function go(name, messages = {}) {
  carried = messages;
  if (route() === name) render();
  else location.hash = `#/${name}`;
}

async function render() {
  let name = route();
  if (!user && !PUBLIC_ROUTES.includes(name) && !LINK_ROUTES.includes(name)) name = "login";
  if (user && PUBLIC_ROUTES.includes(name)) name = "books";
  if (name === "mfa" && !mfaTicket) name = "login";
  const focus = !firstRender;
  firstRender = false;
  notify(carried.notice || "");
  alertText(carried.alert || "");
  carried = {};
  $("#nav").hidden = !user;
  $("#who").textContent = user ? user.name : "";
  for (const button of document.querySelectorAll(".nav-button")) {
    if (button.dataset.route === name) button.setAttribute("aria-current", "page");
    else button.removeAttribute("aria-current");
  }
  try {
    if (name === "books") await books.show({ focus });
    else if (name === "sessions") await sessions.show({ focus });
    else if (name === "settings") await settings.show({ focus });
    else if (name === "tokens") await tokens.show({ focus });
    else if (LINK_ROUTES.includes(name)) links.show(name, { focus });
    else showAuthView(name, focus);
  } catch (failure) {
    showError(failure);
  }
}

// --- logging in and out --------------------------------------------------------------------

function showAuthView(name, focus) {
  const view = clone(`${name}-view`);
  const form = $("form", view);
  if (name === "login") {
    onSubmit(form, logIn);
    const passkey = $("[data-action=passkey]", view);
    passkey.addEventListener("click", () => whileBusy(passkey, signInWithPasskey));
  }
  if (name === "signup") onSubmit(form, signUp);
  if (name === "mfa") {
    onSubmit(form, verifyCode);
    const other = () => ($("#mfa-code", form).name === "code" ? "recovery_code" : "code");
    $("[data-action=switch]", form).addEventListener("click", () => switchFactor(form, other()));
  }
  mount(view, { focus });
}

async function logIn(form) {
  const { email, password } = form.elements;
  const data = await api.login(email.value.trim(), password.value);
  if (data.mfa_required) {
    mfaTicket = data.mfa_ticket;
    go("mfa");
    return;
  }
  welcome(data, `Welcome back, ${data.name}.`);
}

// The second step asks for one kind of code at a time, so that the field, its hint and the
// name the API knows it by match what the user has in hand.
const FACTORS = {
  code: {
    label: "Authenticator code",
    hint: "The 6-digit code your authenticator app shows now.",
    inputMode: "numeric",
    autocomplete: "one-time-code",
    other: "Use a recovery code instead",
  },
  recovery_code: {
    label: "Recovery code",
    hint: "One of the recovery codes you saved when you turned two-factor authentication on. Each works once.",
    inputMode: "text",
    autocomplete: "off",
    other: "Use your authenticator app instead",
  },
};

function switchFactor(form, name) {
  const factor = FACTORS[name];
  const input = $("#mfa-code", form);
  Object.assign(input, { name, value: "", inputMode: factor.inputMode, autocomplete: factor.autocomplete });
  $("label[for=mfa-code]", form).textContent = factor.label;
  $(".hint", form).textContent = factor.hint;
  $("[data-action=switch]", form).textContent = factor.other;
  clearFieldErrors(form);
  clearMessages();
  input.focus();
}

/** No email and no password: the browser offers this site's passkeys, and a passkey is both factors. */
async function signInWithPasskey() {
  const { data } = await api.request("POST", "/users/login/passkey/options", { auth: false });
  const loggedIn = await api.loginWithPasskey(await browserPasskey("get", data.options));
  welcome(loggedIn, `Welcome back, ${loggedIn.name}.`);
}

async function verifyCode(form) {
  const input = $("#mfa-code", form);
  try {
    const data = await api.loginWithSecondFactor(mfaTicket, { [input.name]: input.value.trim() });
    mfaTicket = null;
    const used = input.name === "recovery_code" ? " That recovery code is used up: new ones are in Settings." : "";
    welcome(data, `Welcome back, ${data.name}.${used}`);
  } catch (failure) {
    if (failure instanceof ApiError && /log in again/.test(failure.message)) {
      // The ticket expired or was used up: start over, saying why.
      mfaTicket = null;
      go("login", { alert: failure.message });
      return;
    }
    throw failure;
  }
}

async function signUp(form) {
  const fields = Object.fromEntries(new FormData(form));
  fields.email = fields.email.trim();
  await api.request("POST", "/users/", { json: fields, auth: false });
  const data = await api.login(fields.email, fields.password);
  welcome(data, `Account created. Welcome, ${data.name}.`);
}

function welcome(data, message) {
  user = { name: data.name, email: data.email };
  books.page = 1;
  go("books", { notice: message });
}

function loggedOut(message) {
  user = null;
  go("login", { notice: message });
}

function passwordReset(message) {
  api.forget(); // the reset ended every session, this tab's too
  loggedOut(message);
}

function sessionEnded(failure) {
  user = null;
  go("login", { alert: failure.message });
}

// --- start --------------------------------------------------------------------------------

async function resumeSession() {
  if (!api.canResume) return;
  try {
    await api.resume();
    const { data } = await api.request("GET", "/users/");
    user = { name: data.name, email: data.email };
  } catch {
    api.forget(); // not logged in after all: the login form it is
  }
}

async function start() {
  // First of all, before the token can linger in the address bar while the API answers.
  const linkTokens = takeLinkToken();
  try {
    api = new Api(apiBase(config.api), { onSessionEnded: sessionEnded });
  } catch (failure) {
    showError(failure);
    $("#main").replaceChildren();
    return;
  }
  $("#api-docs").href = `${api.base}/docs`;
  books = new BooksView(api);
  sessions = new SessionsView(api, { onLoggedOut: loggedOut });
  settings = new SettingsView(api);
  tokens = new TokensView(api);
  links = new AccountLinks(api, linkTokens, { loggedIn: () => Boolean(user), onPasswordReset: passwordReset });
  const logout = $("#logout");
  logout.addEventListener("click", () =>
    whileBusy(logout, async () => {
      // This tab forgets its tokens whatever the answer; a failure is still worth showing.
      try {
        await api.logout();
      } finally {
        loggedOut("You are logged out.");
      }
    }),
  );
  for (const button of document.querySelectorAll("#nav [data-route]")) {
    button.addEventListener("click", () => go(button.dataset.route));
  }
  // Buttons inside views (e.g. "Create an account") are wired by delegation.
  $("#main").addEventListener("click", (event) => {
    const target = event.target.closest("[data-route]");
    if (target) go(target.dataset.route);
  });
  window.addEventListener("hashchange", render);
  try {
    await api.connect();
    await resumeSession();
  } catch (failure) {
    await render();
    showError(failure);
    return;
  }
  await render();
}

start();
