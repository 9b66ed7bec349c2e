// Small DOM helpers shared by the views: templates, messages, field errors, busy buttons.

import { ApiError, SessionEnded } from "./api.js";

// The API's categories (validate.CATEGORIES); the server checks them again.
export const CATEGORIES = ["romance", "poetry", "politics", "picture book", "science", "fantasy", "horror", "thriller"];

export const $ = (selector, root = document) => root.querySelector(selector);

/** A copy of a <template>'s first element. */
export function clone(id) {
  return document.getElementById(id).content.firstElementChild.cloneNode(true);
}

/** Show a view in <main>; focus its heading when the user navigated (not on first load). */
export function mount(view, { focus = true } = {}) {
  const main = $("#main");
  main.replaceChildren(view);
  linkHints(view);
  if (focus) (view.querySelector("h1") || main).focus();
}

/** Hints are read out with their field. */
export function linkHints(root) {
  for (const field of root.querySelectorAll(".field")) {
    const control = field.querySelector("input, select, textarea");
    const hint = field.querySelector(".hint");
    if (control && hint) {
      hint.id = `${control.id}-hint`;
      control.setAttribute("aria-describedby", hint.id);
      control.dataset.describedby = hint.id;
    }
  }
}

export function fillCategories(select) {
  for (const name of CATEGORIES) {
    select.append(new Option(name[0].toUpperCase() + name.slice(1), name));
  }
}

// --- messages ------------------------------------------------------------------------------

export function notify(text, notice = $("#notice")) {
  notice.textContent = text;
  notice.hidden = !text;
}

export function clearMessages(region = $("#alert"), notice = $("#notice")) {
  notify("", notice);
  region.textContent = "";
  region.hidden = true;
}

export function alertText(text, region = $("#alert")) {
  region.textContent = text;
  region.hidden = !text;
}

function seconds(count) {
  if (count < 90) return `${count} second${count === 1 ? "" : "s"}`;
  return `${Math.ceil(count / 60)} minutes`;
}

/** Put an API failure in front of the user: each field's message beside its field, and in the
 * message region what is not said there already (the envelope's message when no field could
 * take it, a field's message the form has no field for, when to try again). */
export function showError(failure, { form = null, region = $("#alert") } = {}) {
  if (failure instanceof SessionEnded) return; // already reported, with the login form
  if (!(failure instanceof ApiError)) {
    console.error(failure);
    failure = new ApiError("Something went wrong in the app. Reload the page and try again.");
  }
  const elsewhere = [];
  let firstInvalid = null;
  for (const [name, message] of Object.entries(failure.fields)) {
    const control = form && form.elements.namedItem(name);
    if (control && control.id) {
      markInvalid(control, message);
      firstInvalid = firstInvalid || control;
    } else if (!elsewhere.includes(message)) {
      elsewhere.push(message); // e.g. a mailed link's token, whose message is the envelope's own
    }
  }
  // "The request has invalid fields." says nothing the marked fields do not.
  const lines = firstInvalid ? elsewhere : [failure.message, ...elsewhere.filter((m) => m !== failure.message)];
  if (failure.status === 413) lines.push("Choose a smaller file.");
  if (failure.retryAfter) lines.push(`You can try again in ${seconds(failure.retryAfter)}.`);
  alertText(lines.join(" "), region);
  if (firstInvalid) firstInvalid.focus();
}

function markInvalid(control, message) {
  const error = document.createElement("p");
  error.className = "field-error";
  error.id = `${control.id}-error`;
  error.textContent = message;
  control.after(error);
  control.setAttribute("aria-invalid", "true");
  const ids = [error.id, control.dataset.describedby].filter(Boolean);
  control.setAttribute("aria-describedby", ids.join(" "));
}

export function clearFieldErrors(form) {
  for (const error of form.querySelectorAll(".field-error")) error.remove();
  for (const control of form.querySelectorAll("[aria-invalid]")) {
    control.removeAttribute("aria-invalid");
    if (control.dataset.describedby) control.setAttribute("aria-describedby", control.dataset.describedby);
    else control.removeAttribute("aria-describedby");
  }
}

/** Run a form's action with its submit button disabled; show any failure in the form. */
export function onSubmit(form, action, { region = $("#alert"), notice = $("#notice") } = {}) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("[type=submit]");
    clearMessages(region, notice);
    clearFieldErrors(form);
    button.disabled = true;
    form.setAttribute("aria-busy", "true");
    try {
      await action(form);
    } catch (failure) {
      showError(failure, { form, region });
    } finally {
      button.disabled = false;
      form.removeAttribute("aria-busy");
    }
  });
}

/** A part of a page with its own heading and messages (its .notice and .alert), e.g. a section
 * of the settings. `page.api` is the API; `page.clear()` quiets every part before one acts, so
 * that the one message on screen is about the last thing done. */
export class Section {
  constructor(templateId, page) {
    this.page = page;
    this.api = page.api;
    this.element = clone(templateId);
    this.heading = this.element.querySelector("h2");
    this.notice = $(".notice", this.element);
    this.alert = $(".alert", this.element);
  }

  /** Show the account's state; `user` is GET /users/'s data, as changed since. */
  update() {}

  /** A form of this section: its failures are shown here. */
  onSubmit(form, action) {
    const act = (submitted) => {
      this.page.clear();
      return action(submitted);
    };
    onSubmit(form, act, { region: this.alert, notice: this.notice });
  }

  say(text) {
    notify(text, this.notice);
  }

  clear() {
    clearMessages(this.alert, this.notice);
  }

  fail(failure) {
    showError(failure, { region: this.alert });
  }
}

/** Run a button's action with the button disabled; show any failure on the page. */
export async function whileBusy(button, action) {
  clearMessages();
  button.disabled = true;
  try {
    await action();
  } catch (failure) {
    showError(failure);
  } finally {
    button.disabled = false;
  }
}

// --- dates and devices ------------------------------------------------------------------------

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
const STEPS = [
  [60, "second"],
  [60, "minute"],
  [24, "hour"],
  [30, "day"],
  [12, "month"],
  [Infinity, "year"],
];

/** "2 minutes ago", "in 29 days". */
export function fromNow(iso) {
  let amount = (new Date(iso).getTime() - Date.now()) / 1000;
  for (const [size, unit] of STEPS) {
    if (Math.abs(amount) < size) return relative.format(Math.round(amount), unit);
    amount /= size;
  }
  return "";
}

const BROWSERS = [
  [/Edg\//, "Edge"],
  [/OPR\//, "Opera"],
  [/Firefox\//, "Firefox"],
  [/Chrom(e|ium)\//, "Chrome"],
  [/Safari\//, "Safari"],
  [/PostmanRuntime\//, "Postman"],
  [/curl\//, "curl"],
  [/python-|aiohttp/i, "Python"],
];
const SYSTEMS = [
  [/Android/, "Android"],
  [/iPhone|iPad/, "iOS"],
  [/Windows/, "Windows"],
  [/Mac OS X/, "macOS"],
  [/CrOS/, "ChromeOS"],
  [/Linux/, "Linux"],
];

/** "Chrome on Linux" from a User-Agent string. */
export function device(userAgent) {
  if (!userAgent) return "Unknown device";
  const browser = (BROWSERS.find(([pattern]) => pattern.test(userAgent)) || [null, null])[1];
  const system = (SYSTEMS.find(([pattern]) => pattern.test(userAgent)) || [null, null])[1];
  if (browser && system) return `${browser} on ${system}`;
  return browser || system || userAgent.slice(0, 60);
}
