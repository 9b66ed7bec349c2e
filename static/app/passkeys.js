// The settings' passkeys section: the account's passkeys (name, where they live, when added and
// last used), renaming and removing one, and "Add a passkey" (the password first, then the
// browser's own dialog). Signing in with a passkey is on the login page (app.js, api.js).

import { ApiError } from "./api.js";
import { $, clone, fromNow, linkHints, Section, showError, whileBusy } from "./ui.js";

/** The browser's passkey dialog for options the API sent in their JSON form; the answer in
 * its JSON form. A dismissed dialog becomes a message to read, not a stack trace. */
export async function browserPasskey(kind, options) {
  if (!window.PublicKeyCredential || !PublicKeyCredential.parseCreationOptionsFromJSON) {
    throw new ApiError("This browser cannot use passkeys.");
  }
  try {
    const credential =
      kind === "create"
        ? await navigator.credentials.create({ publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options) })
        : await navigator.credentials.get({ publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options) });
    return credential.toJSON();
  } catch (failure) {
    if (failure instanceof DOMException && failure.name === "NotAllowedError") {
      throw new ApiError("No passkey was chosen, or the browser's dialog was closed.");
    }
    if (failure instanceof DOMException && failure.name === "InvalidStateError") {
      throw new ApiError("This device already has a passkey for your account.");
    }
    throw failure;
  }
}

export class PasskeysSection extends Section {
  constructor(page) {
    super("passkeys-section", page);
    this.list = $("[data-slot=list]", this.element);
    this.loaded = false;
    this.onSubmit($("[data-form=add]", this.element), (form) => this.add(form));
  }

  update() {
    if (this.loaded) return;
    this.loaded = true;
    this.load().catch((failure) => showError(failure, { region: this.alert }));
  }

  async load() {
    const { data } = await this.api.request("GET", "/users/passkeys");
    const items = data.map((passkey) => this.item(passkey));
    if (!items.length) {
      const none = document.createElement("li");
      none.className = "empty";
      none.textContent = "No passkeys yet.";
      items.push(none);
    }
    this.list.replaceChildren(...items);
  }

  async add(form) {
    const json = { password: form.elements.password.value };
    const { data } = await this.api.request("POST", "/users/passkeys/registration/options", { json });
    const credential = await browserPasskey("create", data.options);
    const name = form.elements.name.value.trim();
    const added = await this.api.request("POST", "/users/passkeys", {
      json: name ? { credential, name } : { credential },
    });
    form.reset();
    await this.load();
    this.say(`Passkey "${added.data.name}" added: you can sign in with it.`);
  }

  item(passkey) {
    const item = clone("passkey-item");
    $(".device", item).textContent = passkey.name;
    const where = passkey.authenticator ? `${passkey.authenticator} · ` : "";
    const used = passkey.last_used_at ? `last used ${fromNow(passkey.last_used_at)}` : "not used yet";
    $(".meta", item).textContent = `${where}added ${fromNow(passkey.created_at)} · ${used}`;
    const rename = $("[data-form=rename]", item);
    const input = $("input", rename);
    input.id = `passkey-name-${passkey.id}`;
    $("label", rename).htmlFor = input.id;
    $("label", rename).textContent = `New name for ${passkey.name}`;
    input.value = passkey.name;
    linkHints(rename);
    this.onSubmit(rename, async () => {
      await this.api.request("PATCH", `/users/passkeys/${passkey.id}`, { json: { name: input.value.trim() } });
      await this.load();
      this.say("Passkey renamed.");
    });
    const remove = $("[data-action=delete]", item);
    remove.setAttribute("aria-label", `Delete the passkey ${passkey.name}`);
    remove.addEventListener("click", () =>
      whileBusy(remove, async () => {
        await this.api.request("DELETE", `/users/passkeys/${passkey.id}`);
        await this.load();
        this.say(`Passkey "${passkey.name}" deleted.`);
        this.heading.focus();
      }),
    );
    return item;
  }
}
