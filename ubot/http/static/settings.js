// The settings and account view: where alerts go (destinations), quiet hours and time zone
// (PUT /v1/me/settings), the password (PUT /v1/me/password) and the sessions ("Log out everywhere",
// DELETE /v1/me/sessions). Both of the last two end this session too.
import { api } from "./api.js";

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
    // Nothing can be typed until the settings arrive: they would overwrite it.
    const controls = [...this.form.elements];
    for (const control of controls) control.disabled = true;
    try {
      const { data } = await api("GET", "/v1/me/settings");
      for (const name of FIELDS) this.form.elements[name].value = data[name] ?? "";
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
        await this.load();
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
      await this.load();
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
    try {
      await api("PUT", "/v1/me/settings", body);
      this.toast("Settings saved");
      await this.load();
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
