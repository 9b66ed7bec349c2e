// The account's settings page: one section per topic, each a <section> with its own heading
// and messages. To add a section: a template in index.html, a class that extends ui.js's
// Section (update(user) shows the account's state), and its place in SECTIONS.

import { secondFactor } from "./api.js";
import { PasskeysSection } from "./passkeys.js";
import { TwoFactorSection } from "./two-factor.js";
import { $, clone, mount, Section } from "./ui.js";

/** A section's second-factor field: shown, and sent, while two-factor authentication is on. */
class WithFactor extends Section {
  update(user) {
    $("[data-slot=factor]", this.element).hidden = !user.mfa_enabled;
  }

  factor(form) {
    if ($("[data-slot=factor]", form).hidden) return {};
    return secondFactor(form.elements.code.value);
  }
}

class EmailSection extends WithFactor {
  constructor(page) {
    super("email-section", page);
    const resend = $("[data-action=resend]", this.element);
    resend.addEventListener("click", () => this.resend(resend));
    this.onSubmit($("form", this.element), (form) => this.change(form));
  }

  update(user) {
    super.update(user);
    const state = user.email_verified ? "It is verified." : "";
    $("[data-slot=current]", this.element).textContent = `Your address is ${user.email}. ${state}`.trim();
    $("[data-slot=unverified]", this.element).hidden = user.email_verified;
  }

  async change(form) {
    const { email, password } = form.elements;
    const json = { email: email.value.trim(), password: password.value, ...this.factor(form) };
    const { message } = await this.api.request("PUT", "/users/email", { json });
    form.reset();
    this.say(message); // the change waits for the link mailed to the new address
  }

  async resend(button) {
    this.page.clear();
    button.disabled = true;
    try {
      const { message } = await this.api.request("POST", "/users/email/verify/resend");
      this.say(message);
    } catch (failure) {
      this.fail(failure);
    } finally {
      button.disabled = false;
    }
  }
}

class PasswordSection extends WithFactor {
  constructor(page) {
    super("password-section", page);
    this.onSubmit($("form", this.element), (form) => this.change(form));
  }

  async change(form) {
    const { current_password: current, new_password: next } = form.elements;
    const json = { current_password: current.value, new_password: next.value, ...this.factor(form) };
    const { message, data } = await this.api.request("PUT", "/users/password", { json });
    this.api.startSession(data); // every other session ended; this one has new tokens
    form.reset();
    this.say(message);
  }
}

const SECTIONS = [EmailSection, PasswordSection, TwoFactorSection, PasskeysSection];

export class SettingsView {
  constructor(api) {
    this.api = api;
    this.user = {};
  }

  async show({ focus = true } = {}) {
    const view = clone("settings-view");
    this.sections = SECTIONS.map((Section) => new Section(this));
    $("[data-slot=sections]", view).append(...this.sections.map((section) => section.element));
    mount(view, { focus });
    const { data } = await this.api.request("GET", "/users/");
    this.user = {};
    this.changed(data);
  }

  clear() {
    for (const section of this.sections) section.clear();
  }

  /** The account changed (or was loaded): every section shows what it has become. */
  changed(fields) {
    this.user = { ...this.user, ...fields };
    for (const section of this.sections) section.update(this.user);
  }
}
