// The settings and account view: where alerts go (destinations), quiet hours, time zone and the
// mute (PUT /v1/me/settings), the password (PUT /v1/me/password) and the sessions: each one listed
// (GET /v1/me/sessions) with its own "Log out" (DELETE /v1/me/sessions/{id}), and "Log out
// everywhere" (DELETE /v1/me/sessions). A new password and "Log out everywhere" end this session too.
import { api } from "./api.js";
import { dateTime, el } from "./format.js";

const CHANNEL_NAMES = { webhook: "Webhook", telegram: "Telegram", sms: "SMS", whatsapp: "WhatsApp", email: "E-mail" };
const CODE_CHANNELS = ["email", "sms", "whatsapp"];
const FIELDS = ["webhook_url", "webhook_secret", "telegram_chat_id", "sms_to", "whatsapp_to", "email_to", "quiet_hours", "timezone", "quote_currency"];

export class SettingsView {
  constructor(root, { toast, ended }) {
    this.root = root;
    this.toast = toast;
    this.ended = ended; // the session is over: the page shows the login again
    this.form = root.querySelector("#settings-form");
    this.message = root.querySelector("#settings-message");
    this.passwordForm = root.querySelector("#password-form");
    this.passwordMessage = root.querySelector("#password-message");
    this.sessionsMessage = root.querySelector("#sessions-message");
    this.sessions = root.querySelector("#sessions");
    this.destinations = root.querySelector("#destinations");
    this.verifyMessage = root.querySelector("#verify-message");
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.save();
    });
    this.passwordForm.addEventListener("submit", (event) => {
      event.preventDefault();
      this.changePassword();
    });
    root.querySelector("#logout-everywhere").addEventListener("click", () => this.logOutEverywhere());
    root.querySelector("#timezone-here").addEventListener("click", () => {
      this.form.elements.timezone.value = Intl.DateTimeFormat().resolvedOptions().timeZone;
    });
    const zones = root.querySelector("#timezones");
    if (Intl.supportedValuesOf && !zones.options.length) {
      for (const zone of Intl.supportedValuesOf("timeZone")) zones.append(new Option(zone));
    }
  }

  async load() {
    await Promise.all([this.loadSettings(), this.loadSessions()]);
  }

  async loadSettings() {
    // Nothing can be typed until the settings arrive: they would overwrite it.
    const controls = [...this.form.elements];
    for (const control of controls) control.disabled = true;
    try {
      const { data } = await api("GET", "/v1/me/settings");
      for (const name of FIELDS) this.form.elements[name].value = data[name] ?? "";
      // The mute in this device's time, to the minute; saved unchanged, it is sent back as it was.
      this.muted = { iso: data.muted_until, shown: data.muted_until ? localInput(data.muted_until) : "" };
      this.form.elements.muted_until.value = this.muted.shown;
      this.message.textContent = "";
      this.showDestinations(data.destinations || []);
    } finally {
      for (const control of controls) control.disabled = false;
    }
  }

  // Each destination, its state (unverified / pending / verified) and a Verify button
  // (POST /v1/me/destinations/{channel}/verify); a code field for e-mail, SMS and WhatsApp (/confirm),
  // the deep link for Telegram.
  showDestinations(destinations) {
    this.destinations.replaceChildren();
    for (const { channel, target, state } of destinations) {
      const item = document.createElement("li");
      item.dataset.channel = channel;
      item.dataset.state = state;
      const name = CHANNEL_NAMES[channel] || channel;
      const label = document.createElement("span");
      label.textContent = `${name}: ${target || (channel === "telegram" ? "no chat linked" : "not set")} — ${state}`;
      item.append(label);
      if (state !== "verified" && (target || channel === "telegram")) {
        const verify = document.createElement("button");
        verify.type = "button";
        verify.className = "ghost";
        verify.textContent = "Verify";
        verify.setAttribute("aria-label", `Verify ${name}`);
        verify.addEventListener("click", () => this.verify(channel, item));
        item.append(" ", verify);
      }
      this.destinations.append(item);
    }
  }

  async verify(channel, item) {
    this.verifyMessage.textContent = "";
    try {
      const { data } = await api("POST", `/v1/me/destinations/${channel}/verify`);
      if (data.link) {
        const link = document.createElement("a");
        link.href = data.link;
        link.target = "_blank";
        link.rel = "noopener";
        link.textContent = "Open the bot and press Start";
        item.append(" ", link);
      } else if (CODE_CHANNELS.includes(channel) && data.state === "pending") {
        const code = document.createElement("input");
        code.inputMode = "numeric";
        code.maxLength = 6;
        code.setAttribute("aria-label", `Code sent to ${CHANNEL_NAMES[channel]}`);
        const confirm = document.createElement("button");
        confirm.type = "button";
        confirm.textContent = "Confirm";
        confirm.addEventListener("click", () => this.confirm(channel, code));
        item.append(" ", code, " ", confirm);
        code.focus();
      } else {
        this.toast(`${CHANNEL_NAMES[channel]}: ${data.state}`);
        if (data.state !== "verified") this.verifyMessage.textContent = data.detail;
        await this.loadSettings();
      }
    } catch (error) {
      if (error.status === 401) return this.ended(error);
      this.verifyMessage.textContent = error.message;
    }
  }

  async confirm(channel, code) {
    this.verifyMessage.textContent = "";
    try {
      await api("POST", `/v1/me/destinations/${channel}/confirm`, { code: code.value.trim() });
      this.toast(`${CHANNEL_NAMES[channel]} verified`);
      await this.loadSettings();
    } catch (error) {
      if (error.status === 401) return this.ended(error);
      this.verifyMessage.textContent = error.message;
      code.focus();
    }
  }

  async save() {
    this.message.textContent = "";
    const body = {};
    for (const name of FIELDS) {
      const value = this.form.elements[name].value.trim();
      if (value) body[name] = value; // PUT: what is left out is cleared
    }
    const muted = this.form.elements.muted_until.value;
    if (muted !== this.muted?.shown) body.muted_until = muted ? new Date(muted).toISOString() : undefined;
    // as loaded: kept, unless that mute has ended since (then left out, i.e. cleared, not refused as past)
    else if (muted && Date.parse(this.muted.iso) > Date.now()) body.muted_until = this.muted.iso;
    if (body.muted_until === undefined) delete body.muted_until;
    try {
      await api("PUT", "/v1/me/settings", body);
      this.toast("Settings saved");
      await this.loadSettings();
    } catch (error) {
      if (error.status === 401) return this.ended(error);
      this.message.textContent = error.message;
      const field = error.field && this.form.elements[error.field.split(/[.[]/)[0]];
      if (field) field.focus();
    }
  }

  async changePassword() {
    this.passwordMessage.textContent = "";
    const fields = this.passwordForm.elements;
    try {
      await api("PUT", "/v1/me/password", { old_password: fields.old_password.value, new_password: fields.new_password.value });
      this.passwordForm.reset();
      this.ended(null, "Password changed: every session ended, log in with the new one.");
    } catch (error) {
      if (error.status === 401) return this.ended(error);
      this.passwordMessage.textContent = error.message;
      const field = { old_password: fields.old_password, new_password: fields.new_password }[error.field] || (error.status === 403 ? fields.old_password : null);
      if (field) field.focus();
    }
  }

  async loadSessions() {
    const { data } = await api("GET", "/v1/me/sessions");
    this.sessions.replaceChildren(...data.sessions.map((session) => this.sessionItem(session)));
  }

  // One session: what logged in (this browser, a browser, a program; its user agent and address),
  // when, when last used, and its own "Log out" button.
  sessionItem(session) {
    const what = session.current ? "This browser" : { browser: "A browser", program: "A program" }[session.kind] || "A session";
    const from = [session.user_agent, session.client && `from ${session.client}`].filter(Boolean).join(" ");
    const summary = `${what}${from ? `: ${from}` : ""}`;
    const button = el("button", { type: "button", className: "ghost", "aria-label": `Log out session ${session.id} (${summary})` }, "Log out");
    button.addEventListener("click", () => this.logOutSession(session));
    return el(
      "li",
      { "data-session-id": String(session.id), "data-kind": session.kind || "", "data-current": String(session.current) },
      el("span", {}, summary, el("br"), el("small", { className: "muted" }, `Logged in ${dateTime(session.created_at)} · last used ${dateTime(session.last_seen_at)}`)),
      button,
    );
  }

  async logOutSession(session) {
    this.sessionsMessage.textContent = "";
    try {
      await api("DELETE", `/v1/me/sessions/${session.id}`);
      if (session.current) return this.ended(null, "Logged out");
      this.toast("Session logged out");
      await this.loadSessions();
    } catch (error) {
      if (error.status === 401) return this.ended(error);
      this.sessionsMessage.textContent = error.message;
      if (error.status === 404) await this.loadSessions();
    }
  }

  async logOutEverywhere() {
    try {
      const { data } = await api("DELETE", "/v1/me/sessions");
      this.ended(null, `Logged out everywhere: ${data.revoked} session${data.revoked === 1 ? "" : "s"} ended.`);
    } catch (error) {
      if (error.status === 401) return this.ended(error);
      this.sessionsMessage.textContent = error.message;
    }
  }
}

/** An ISO instant as a datetime-local input shows it: "2026-12-06T10:30", in this device's time. */
function localInput(iso) {
  const when = new Date(iso);
  const two = (n) => String(n).padStart(2, "0");
  return `${when.getFullYear()}-${two(when.getMonth() + 1)}-${two(when.getDate())}T${two(when.getHours())}:${two(when.getMinutes())}`;
}
