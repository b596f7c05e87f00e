// The strategies view: the list (enable/disable, edit) and the form, whose condition and message
// template are checked as they are typed (POST /v1/conditions/validate, the template against the
// condition): the message, and a caret under the column at fault. A refusal on save shows the same way.
import { api } from "./api.js";
import { DryRunPanel } from "./dryrun.js";
import { caretText, el } from "./format.js";

const DAY_MS = 86_400_000;
/** Each channel's destination in the settings. */
const DESTINATIONS = { webhook: "webhook_url", telegram: "telegram_chat_id", sms: "sms_to", whatsapp: "whatsapp_to", email: "email_to" };

/** A datetime-local input's value for epoch milliseconds (the browser's local time). */
function localInput(ms) {
  const date = new Date(ms - new Date(ms).getTimezoneOffset() * 60_000);
  return date.toISOString().slice(0, 16);
}

const CHECK_DELAY_MS = 250;
const LISTED_TEMPLATE_MAX = 60;

/** A field's text checked by uBot as it is typed (a condition, a message template): its message,
 * and a caret under the column at fault. ``ask(text)`` gives the result to show. */
class FieldCheck {
  constructor(input, caret, message, ask) {
    this.input = input;
    this.caret = caret;
    this.message = message;
    this.ask = ask;
    this.sent = 0; // the number of the latest check: older answers are dropped
    this.timer = null;
  }

  /** Check the text once typing pauses. */
  schedule() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.run(), CHECK_DELAY_MS);
  }

  /** Check the text now. */
  async run() {
    clearTimeout(this.timer);
    const number = ++this.sent;
    const result = await this.ask(this.input.value);
    if (number === this.sent) this.display(result);
  }

  /** Show ``result`` (what a save said, or null), dropping the checks under way. */
  show(result) {
    clearTimeout(this.timer);
    this.sent++;
    this.display(result);
  }

  /** ``result``: null (nothing to say), {note} (nothing to check yet), or {ok, message, column, text}. */
  display(result) {
    this.caret.hidden = true;
    this.input.removeAttribute("aria-invalid");
    this.message.className = "muted";
    if (!result) {
      this.message.textContent = "";
      return;
    }
    if (result.note) {
      this.message.textContent = result.note;
      return;
    }
    this.message.textContent = result.message;
    this.message.className = result.ok ? "ok" : "neg";
    if (result.ok) return;
    this.input.setAttribute("aria-invalid", "true");
    if (result.column) {
      // The column counts from the text's first character; show the line it falls in.
      this.caret.textContent = caretText(result.text, result.column);
      this.caret.setAttribute("aria-label", `Column ${result.column}`);
      this.caret.hidden = false;
    }
  }
}

export class StrategiesView {
  constructor(root, toast) {
    this.root = root;
    this.toast = toast;
    this.body = root.querySelector("#strategy-table").tBodies[0];
    this.empty = root.querySelector("#strategy-empty");
    this.form = root.querySelector("#strategy-form");
    this.title = root.querySelector("#strategy-form-title");
    this.condition = root.querySelector("#s-condition");
    this.conditionCheck = new FieldCheck(this.condition, root.querySelector("#s-caret"), root.querySelector("#s-condition-message"), (text) =>
      this.checkCondition(text),
    );
    this.template = root.querySelector("#s-template");
    this.templateCheck = new FieldCheck(this.template, root.querySelector("#s-template-caret"), root.querySelector("#s-template-message"), (text) =>
      this.checkTemplate(text),
    );
    this.message = root.querySelector("#strategy-message");
    this.editing = null; // the id of the strategy in the form, or null for a new one
    // The template is checked against the condition: a change of either checks it again.
    this.condition.addEventListener("input", () => {
      this.conditionCheck.schedule();
      if (this.template.value.trim()) this.templateCheck.schedule();
    });
    this.template.addEventListener("input", () => this.templateCheck.schedule());
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.save();
    });
    for (const radio of this.form.elements.scope) radio.addEventListener("change", () => this.scope());
    root.querySelector("#strategy-new").addEventListener("click", () => this.edit(null));
    this.dryRunButton = root.querySelector("#strategy-dry-run");
    this.dryRunButton.addEventListener("click", () => this.dryRun());
    this.panel = new DryRunPanel(root.querySelector("#dry-run"));
    this.latest = () => null; // the latest snapshot's time (app.js sets it): where history ends
  }

  /** The range to dry-run: the form's, or the day before the latest snapshot (filled in). */
  range() {
    const fields = this.form.elements;
    if (!fields.dry_end.value) {
      const latest = this.latest();
      const end = latest ? Date.parse(latest) + 60_000 : Date.now();
      fields.dry_end.value = localInput(end);
    }
    if (!fields.dry_start.value) fields.dry_start.value = localInput(new Date(fields.dry_end.value).getTime() - DAY_MS);
    return [new Date(fields.dry_start.value).getTime(), new Date(fields.dry_end.value).getTime()];
  }

  /** Run the form's rules (saved or not) over stored history: POST /v1/conditions/dry-run. */
  async dryRun() {
    this.message.textContent = "";
    const rules = this.body_();
    delete rules.name;
    delete rules.enabled;
    delete rules.channels;
    delete rules.template;
    const [start, end] = this.range();
    this.dryRunButton.disabled = true;
    this.panel.running();
    try {
      const { data } = await api("POST", "/v1/conditions/dry-run", {
        ...rules,
        start: new Date(start).toISOString(),
        end: new Date(end).toISOString(),
      });
      await this.panel.show(data, rules.timeframe, start, end);
    } catch (error) {
      this.panel.failed();
      this.refused(error, rules.condition, { start: "dry_start", end: "dry_end" });
    } finally {
      this.dryRunButton.disabled = false;
    }
  }

  /** A refusal of the form's content: the message, the caret, the field at fault focused. */
  refused(error, condition, names = {}) {
    this.message.textContent = error.message;
    if (error.field === "condition") {
      this.conditionCheck.show({ ok: false, message: error.message, column: error.column, text: condition });
      this.condition.focus();
      return;
    }
    if (error.field === "template") {
      this.templateCheck.show({ ok: false, message: error.message, column: error.column, text: this.template.value });
      this.template.focus();
      return;
    }
    const name = error.field && (names[error.field] || error.field.split(/[.[]/)[0]);
    const field = name && this.form.elements[name];
    if (field && typeof field.focus === "function") field.focus();
  }

  async load() {
    const [{ data }, settings] = await Promise.all([api("GET", "/v1/me/strategies"), api("GET", "/v1/me/settings")]);
    this.channelStates(settings.data);
    this.strategies = data.strategies;
    if (this.listed) this.listed(data.strategies);
    this.body.replaceChildren(...data.strategies.map((strategy) => this.row(strategy)));
    this.empty.hidden = data.strategies.length > 0;
  }

  /** Each channel's state: whether the user's settings give it a destination. */
  channelStates(settings) {
    for (const [channel, field] of Object.entries(DESTINATIONS)) {
      const state = this.form.querySelector(`[data-state="${channel}"]`);
      state.textContent = settings[field] ? `to ${settings[field]}` : "(no destination yet)";
      state.className = settings[field] ? "muted" : "neg";
    }
  }

  row(strategy) {
    const toggle = el("input", { type: "checkbox", checked: strategy.enabled, className: "switch" });
    toggle.setAttribute("aria-label", `Enabled: ${strategy.name}`);
    toggle.addEventListener("change", () => this.enable(strategy, toggle));
    const edit = el("button", { type: "button", className: "ghost small" }, "Edit");
    edit.setAttribute("aria-label", `Edit ${strategy.name}`);
    edit.addEventListener("click", () => this.edit(strategy));
    const coins = strategy.symbols ? strategy.symbols.join(", ") : `top ${strategy.top_n}`;
    const channels = strategy.channels.length ? strategy.channels.join(", ") : "this page only";
    const name = el("th", { scope: "row" }, strategy.name);
    if (strategy.last_error) name.append(el("small", { className: "neg block" }, strategy.last_error));
    const condition = el("td", {}, el("code", {}, strategy.condition));
    if (strategy.template) {
      const words = strategy.template.length > LISTED_TEMPLATE_MAX ? `${strategy.template.slice(0, LISTED_TEMPLATE_MAX - 1)}…` : strategy.template;
      condition.append(el("small", { className: "muted block", title: strategy.template }, words));
    }
    return el(
      "tr",
      {},
      name,
      condition,
      el("td", {}, strategy.timeframe),
      el("td", {}, coins),
      el("td", {}, channels),
      el("td", {}, toggle),
      el("td", { className: "end" }, edit),
    );
  }

  async enable(strategy, toggle) {
    try {
      await api("PATCH", `/v1/me/strategies/${strategy.id}`, { enabled: toggle.checked });
      strategy.enabled = toggle.checked;
      if (this.editing === strategy.id) this.form.elements.enabled.checked = toggle.checked;
      this.toast(`${strategy.name} ${toggle.checked ? "enabled" : "disabled"}`);
    } catch (error) {
      toggle.checked = !toggle.checked;
      this.toast(error.message);
    }
  }

  edit(strategy) {
    const fields = this.form.elements;
    this.editing = strategy ? strategy.id : null;
    this.title.textContent = strategy ? `Edit ${strategy.name}` : "New strategy";
    fields.name.value = strategy ? strategy.name : "";
    this.condition.value = strategy ? strategy.condition : "";
    this.template.value = strategy && strategy.template ? strategy.template : "";
    fields.timeframe.value = strategy ? strategy.timeframe : "1h";
    fields.frequency.value = strategy ? strategy.frequency : "once_per_crossing";
    fields.cooldown_s.value = strategy ? strategy.cooldown_s : 0;
    fields.enabled.checked = strategy ? strategy.enabled : true;
    fields.scope.value = strategy && strategy.symbols ? "symbols" : "top_n";
    fields.symbols.value = strategy && strategy.symbols ? strategy.symbols.join(", ") : "";
    fields.top_n.value = strategy && strategy.top_n ? strategy.top_n : 10;
    for (const box of fields.channels) box.checked = Boolean(strategy && strategy.channels.includes(box.value));
    this.scope();
    this.message.textContent = "";
    this.conditionCheck.show(null);
    this.templateCheck.show(null);
    fields.name.focus();
    if (strategy) this.conditionCheck.run();
    if (strategy && strategy.template) this.templateCheck.run();
  }

  scope() {
    const bySymbols = this.form.elements.scope.value === "symbols";
    this.form.elements.symbols.disabled = !bySymbols;
    this.form.elements.top_n.disabled = bySymbols;
  }

  /** What uBot says of the condition: what it found, or where it is wrong. */
  async checkCondition(text) {
    if (!text.trim()) return null;
    try {
      const { data } = await api("POST", "/v1/conditions/validate", { condition: text });
      const found = data.indicators.length ? `indicators ${data.indicators.join(", ")}` : "no indicator";
      return { ok: true, message: `Valid: ${found}; fields ${data.fields.join(", ") || "none"}.` };
    } catch (error) {
      return { ok: false, message: error.message, column: error.column, text };
    }
  }

  /** What uBot says of the message template, with the condition it shows values of. */
  async checkTemplate(text) {
    if (!text.trim()) return null;
    const condition = this.condition.value;
    if (!condition.trim()) return { note: "Checked once there is a condition." };
    try {
      await api("POST", "/v1/conditions/validate", { condition, template: text });
      return { ok: true, message: "Valid template." };
    } catch (error) {
      if (error.field === "condition") return { note: "Checked once the condition is valid." };
      return { ok: false, message: error.message, column: error.column, text };
    }
  }

  body_() {
    const fields = this.form.elements;
    const body = {
      name: fields.name.value.trim(),
      condition: this.condition.value,
      timeframe: fields.timeframe.value,
      frequency: fields.frequency.value,
      cooldown_s: Number(fields.cooldown_s.value || 0),
      enabled: fields.enabled.checked,
      channels: [...fields.channels].filter((box) => box.checked).map((box) => box.value),
      template: this.template.value.trim() ? this.template.value : null,
    };
    if (fields.scope.value === "symbols") {
      body.symbols = fields.symbols.value.split(/[\s,]+/).filter(Boolean).map((s) => s.toUpperCase());
    } else {
      body.top_n = Number(fields.top_n.value || 0);
    }
    return body;
  }

  async save() {
    this.message.textContent = "";
    const body = this.body_();
    try {
      const { data } =
        this.editing === null
          ? await api("POST", "/v1/me/strategies", body)
          : await api("PUT", `/v1/me/strategies/${this.editing}`, body);
      this.toast(`Saved ${data.name}`);
      this.editing = data.id;
      this.title.textContent = `Edit ${data.name}`;
      await this.load();
    } catch (error) {
      this.refused(error, body.condition);
    }
  }
}
