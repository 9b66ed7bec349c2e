// The account's settings page: one section per topic, each a <section> with its own heading
// and messages. To add a section: a template in index.html, a class that extends ui.js's
// Section (update(user) shows the account's state), and its place in SECTIONS.

import { PasskeysSection } from "./passkeys.js";
import { TwoFactorSection } from "./two-factor.js";
import { $, clone, mount } from "./ui.js";

const SECTIONS = [TwoFactorSection, PasskeysSection];

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

  /** The account changed (or was loaded): every section shows what it has become. */
  changed(fields) {
    this.user = { ...this.user, ...fields };
    for (const section of this.sections) section.update(this.user);
  }
}
