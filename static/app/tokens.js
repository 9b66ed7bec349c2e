// Personal access tokens for scripts: create one (its secret shown once, with a copy button),
// list them, revoke one. Creating needs the password again, and a code with two-step on.

import { $, clone, fromNow, mount, notify, onSubmit, whileBusy } from "./ui.js";

export class TokensView {
  constructor(api) {
    this.api = api;
  }

  async show({ focus = true } = {}) {
    this.view = clone("tokens-view");
    const form = $("form", this.view);
    onSubmit(form, (submitted) => this.create(submitted));
    mount(this.view, { focus });
    await this.load();
  }

  async create(form) {
    const fields = form.elements;
    const scopes = [...form.querySelectorAll("[name=scopes]:checked")].map((box) => box.value);
    const json = {
      name: fields.name.value,
      scopes,
      expires_in_days: Number(fields.expires_in_days.value),
      password: fields.password.value,
    };
    const code = fields.code.value.trim();
    if (code) json[/^\d{6}$/.test(code) ? "code" : "recovery_code"] = code;
    const { data } = await this.api.request("POST", "/users/tokens", { json });
    form.reset();
    this.reveal(data);
    await this.load();
  }

  /** The secret, this once: in a read-only field with a copy button. */
  reveal(token) {
    const shown = clone("token-secret");
    const field = $("input", shown);
    field.value = token.token;
    const copy = $("[data-action=copy]", shown);
    copy.addEventListener("click", async () => {
      field.select();
      try {
        await navigator.clipboard.writeText(field.value);
        notify("Token copied.");
      } catch {
        notify("Select the token and copy it with your keyboard.");
      }
    });
    $("[data-slot=secret]", this.view).replaceChildren(shown);
    notify(`Token “${token.name}” created. Copy it now: it is not shown again.`);
    field.focus();
  }

  async load() {
    const { data } = await this.api.request("GET", "/users/tokens");
    $("[data-slot=list]", this.view).replaceChildren(...data.map((token) => this.item(token)));
    $("[data-slot=empty]", this.view).hidden = data.length > 0;
  }

  item(token) {
    const item = clone("token-item");
    $(".token-name", item).textContent = token.name;
    $(".scopes", item).textContent = `${token.scopes.join(", ")} · ${token.prefix}…`;
    const used = token.last_used_at
      ? `last used ${fromNow(token.last_used_at)}${token.last_used_ip ? ` from ${token.last_used_ip}` : ""}`
      : "never used";
    const expires = new Date(token.expires_at).toLocaleDateString();
    $(".when", item).textContent = `created ${fromNow(token.created_at)} · ${used} · expires ${expires}`;
    $(".soon", item).hidden = !token.expires_soon;
    const revoke = $("[data-action=revoke]", item);
    $(".visually-hidden", revoke).textContent = ` ${token.name}`;
    revoke.addEventListener("click", () =>
      whileBusy(revoke, async () => {
        await this.api.request("DELETE", `/users/tokens/${token.id}`);
        await this.load();
        notify(`Revoked the token “${token.name}”.`);
        $("#tokens-title").focus();
      }),
    );
    return item;
  }
}
