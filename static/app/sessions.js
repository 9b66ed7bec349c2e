// The caller's sessions: where they are logged in, with "End this session" for the others.

import { $, clone, device, fromNow, mount, notify, whileBusy } from "./ui.js";

export class SessionsView {
  constructor(api, { onLoggedOut }) {
    this.api = api;
    this.onLoggedOut = onLoggedOut;
  }

  async show({ focus = true } = {}) {
    this.view = clone("sessions-view");
    const everywhere = $("[data-action=logout-all]", this.view);
    everywhere.addEventListener("click", () =>
      whileBusy(everywhere, async () => {
        await this.api.logout(true);
        this.onLoggedOut("You are logged out on every device.");
      }),
    );
    mount(this.view, { focus });
    await this.load();
  }

  async load() {
    const { data } = await this.api.request("GET", "/users/sessions");
    $("[data-slot=list]", this.view).replaceChildren(...data.map((session) => this.item(session)));
  }

  item(session) {
    const item = clone("session-item");
    const name = device(session.user_agent);
    $(".device", item).textContent = session.current ? `${name} (this session)` : name;
    const where = session.ip ? `${session.ip} · ` : "";
    const meta = $(".meta", item);
    meta.textContent = `${where}last active ${fromNow(session.last_used_at)} · signed in ${fromNow(session.created_at)}`;
    meta.title = `Signed in ${new Date(session.created_at).toLocaleString()}, ends ${new Date(session.expires_at).toLocaleString()}`;
    const end = $("[data-action=end]", item);
    if (session.current) {
      end.remove(); // "Log out" ends this one
    } else {
      end.addEventListener("click", () =>
        whileBusy(end, async () => {
          await this.api.request("DELETE", `/users/sessions/${session.id}`);
          await this.load();
          notify(`Ended the session of ${name}.`);
          $("#sessions-title").focus();
        }),
      );
    }
    return item;
  }
}
