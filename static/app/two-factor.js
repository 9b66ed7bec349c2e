// The settings' two-factor section: set up an authenticator app (QR code and key), turn it on
// with a code, get recovery codes (shown once, and as a text file to download), turn it off.

import { secondFactor } from "./api.js";
import { $, clone, linkHints, Section } from "./ui.js";

export class TwoFactorSection extends Section {
  constructor(page) {
    super("two-factor-section", page);
    this.body = $("[data-slot=body]", this.element);
    this.on = null;
    this.codesUrl = null;
  }

  update(user) {
    // Only a change of state redraws: fresh recovery codes stay on screen.
    if (user.mfa_enabled === this.on) return;
    if (user.mfa_enabled) this.showOn();
    else this.showOff();
  }

  /** The section's body becomes a copy of a template. */
  part(templateId) {
    this.dropCodes();
    const part = clone(templateId);
    this.body.replaceChildren(part);
    linkHints(part);
    return part;
  }

  showOff() {
    this.on = false;
    const part = this.part("two-factor-off");
    this.onSubmit($("form", part), (form) => this.start(form));
  }

  async start(form) {
    const json = { password: form.elements.password.value };
    const { data } = await this.api.request("POST", "/users/mfa/totp", { json });
    const part = this.part("two-factor-enrolling");
    $("[data-slot=qr]", part).src = data.qr_code;
    $("[data-slot=secret]", part).textContent = data.secret;
    $("[data-action=cancel]", part).addEventListener("click", () => {
      this.page.clear();
      this.showOff();
      this.heading.focus();
    });
    this.onSubmit($("form", part), (f) => this.turnOn(f));
    $("input", part).focus();
  }

  async turnOn(form) {
    const json = { code: form.elements.code.value.trim() };
    const { message, data } = await this.api.request("POST", "/users/mfa/totp/verify", { json });
    this.showOn();
    this.page.changed({ mfa_enabled: true });
    this.say(message);
    this.showCodes(data.recovery_codes);
  }

  showOn() {
    this.on = true;
    const part = this.part("two-factor-on");
    this.onSubmit($("[data-form=new-codes]", part), (form) => this.newCodes(form));
    this.onSubmit($("[data-form=turn-off]", part), (form) => this.turnOff(form));
  }

  async newCodes(form) {
    const json = secondFactor(form.elements.code.value);
    const { message, data } = await this.api.request("POST", "/users/mfa/recovery-codes", { json });
    form.reset();
    this.say(message);
    this.showCodes(data.recovery_codes);
  }

  async turnOff(form) {
    const json = { password: form.elements.password.value, ...secondFactor(form.elements.code.value) };
    await this.api.request("DELETE", "/users/mfa/totp", { json });
    this.showOff();
    this.page.changed({ mfa_enabled: false });
    this.say("Two-factor authentication is off.");
    this.heading.focus();
  }

  /** The recovery codes, this once: on screen, and as a text file made here (a blob: URL). */
  showCodes(codes) {
    this.dropCodes();
    const panel = clone("recovery-codes");
    const items = codes.map((code) => {
      const item = document.createElement("li");
      item.textContent = code;
      return item;
    });
    $("[data-slot=codes]", panel).replaceChildren(...items);
    const file = new Blob([codesFile(this.page.user.email, codes)], { type: "text/plain" });
    this.codesUrl = URL.createObjectURL(file);
    $("[data-slot=download]", panel).href = this.codesUrl;
    $("[data-action=saved]", panel).addEventListener("click", () => {
      this.dropCodes();
      this.heading.focus();
    });
    this.body.prepend(panel);
    $("h3", panel).focus();
  }

  dropCodes() {
    const panel = $(".recovery", this.body);
    if (panel) panel.remove();
    if (this.codesUrl) URL.revokeObjectURL(this.codesUrl);
    this.codesUrl = null;
  }
}

function codesFile(email, codes) {
  const made = new Date().toISOString().slice(0, 10);
  const lines = [
    `Book Library recovery codes for ${email}, made ${made}.`,
    "Each code logs you in once in place of a code from your authenticator app.",
    "Getting new codes makes these stop working.",
    "",
    ...codes,
    "",
  ];
  return lines.join("\n");
}
