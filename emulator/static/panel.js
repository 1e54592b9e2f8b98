// The emulator's web panel: keeps the server-rendered page live by polling the control API.
// Plain browser JavaScript, no build step and no library. Every change is a control API call,
// so the page can do nothing the API cannot; the API's answers (and field errors) are shown as
// they come. Served from emulator/static/ by emulator/panel.py.
"use strict";
(function () {
  const cfg = JSON.parse(document.getElementById("panel-config").textContent);
  const API = cfg.api;
  const defs = cfg.schema.$defs;
  const focus = cfg.focus ? cfg.focus.join("/") : null;
  const pollMs = Number(new URLSearchParams(location.search).get("poll_ms")) || cfg.poll_ms;
  const statusLine = document.getElementById("status");

  // -- helpers --------------------------------------------------------------------------------

  function el(tag, attrs, ...kids) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const kid of kids) if (kid !== null && kid !== undefined) node.append(kid);
    return node;
  }

  class ApiError extends Error {
    constructor(status, doc) {
      super((doc && doc.error) || `HTTP ${status}`);
      this.status = status;
      this.doc = doc || {};
    }
  }

  async function api(method, path, body) {
    const init = { method, cache: "no-store", credentials: "same-origin", headers: {} };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const resp = await fetch(API + path, init);
    let doc = null;
    try { doc = await resp.json(); } catch (_) { doc = null; }
    if (!resp.ok) throw new ApiError(resp.status, doc);
    return doc;
  }

  function text(value) {
    if (typeof value === "number" && !Number.isInteger(value)) {
      return String(Number(value.toPrecision(Math.abs(value) < 1e5 ? 4 : 6)));
    }
    if (value !== null && typeof value === "object") return JSON.stringify(value);
    return String(value);
  }

  function setText(node, value) {
    if (node.textContent !== value) node.textContent = value;
  }

  function summary(part, skip) {
    const bits = Object.entries(part || {})
      .filter(([key, value]) => value !== null && value !== undefined && value !== "" && !(skip || []).includes(key))
      .map(([key, value]) => `${key}=${text(value)}`);
    return bits.join(" ") || "any";
  }

  // -- devices ----------------------------------------------------------------------------------

  const previews = {};

  function renderDevices(devices) {
    for (const dev of devices) {
      const key = `${dev.device_type}/${dev.device_number}`;
      const card = document.querySelector(`.device[data-device="${CSS.escape(key)}"]`);
      if (!card || (focus && key !== focus)) continue;
      const tbody = card.querySelector("table.state tbody");
      const pinned = dev.state.Pinned || {};
      const note = card.querySelector(".device-note");
      if (note) setText(note, dev.note || "");
      for (const row of [...tbody.rows]) if (!(row.dataset.key in dev.state)) row.remove();  // a proxy's device read less
      for (const [name, value] of Object.entries(dev.state)) {
        let row = tbody.querySelector(`tr[data-key="${CSS.escape(name)}"]`);
        if (!row) {
          row = el("tr", { "data-key": name }, el("th", { text: name }), el("td", { class: "value" }), el("td", { class: "control" }));
          tbody.append(row);
        }
        const cell = row.querySelector("td.value");
        setText(cell, text(value));
        cell.classList.toggle("long", cell.textContent.length > 12);
        row.classList.toggle("yes", value === true);
        row.classList.toggle("no", value === false);
        const override = dev.state[`${name}Override`];
        row.classList.toggle("pinned", Object.prototype.hasOwnProperty.call(pinned, name) || (override !== undefined && override !== null));
        const kind = controlKind(dev.settable[name], value);
        if (kind && kind !== "dict") ensureControl(row, key, name, kind, value);
      }
      const pinnable = Object.keys(dev.settable).filter((name) => controlKind(dev.settable[name], dev.state[name]) === "object");
      if (pinnable.length && !card.querySelector("form.pin")) card.append(buildPinForm(key, pinnable));
      if (dev.device_type === "camera") updatePreview(card, dev);
    }
  }

  // "object" settables take a value or null (back to the simulation): a boolean one (IsSafe over
  // the weather) is a tick box with an undo, a number one (a weather pin) goes in the pin form.
  function controlKind(kind, value) {
    return kind === "object" && typeof value === "boolean" ? "override" : kind;
  }

  function ensureControl(row, key, name, kind, value) {
    const cell = row.querySelector("td.control");
    if (!cell.firstChild) cell.append(buildControl(key, name, kind));
    if (kind === "bool" || kind === "override") {
      const box = cell.querySelector("input");
      if (box.dataset.busy !== "1") box.checked = value === true;
    }
  }

  function buildControl(key, name, kind) {
    if (kind === "bool") {
      return el("input", {
        type: "checkbox", "data-set": name, title: `set ${name}`,
        onchange: (ev) => setState(key, { [name]: ev.target.checked }, ev.target),
      });
    }
    if (kind === "object" || kind === "override") {  // pinned here or in the pin form; unpinned here
      const unpin = el("button", { type: "button", class: "unpin", text: kind === "object" ? "unpin" : "release",
        title: `back to the simulated ${name}` });
      unpin.addEventListener("click", () => setState(key, { [name]: null }, unpin));
      if (kind === "object") return unpin;
      const box = el("input", { type: "checkbox", "data-set": name, title: `set ${name}` });
      box.addEventListener("change", () => setState(key, { [name]: box.checked }, box));
      return el("span", {}, unpin, " ", box);
    }
    const input = el("input", { "data-set": name, size: 7, placeholder: kind, "aria-label": `new ${name}` });
    const form = el("form", { class: "set" }, input, el("button", { type: "submit", text: "set" }));
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      setState(key, { [name]: parseValue(input.value, kind) }, form);
    });
    return form;
  }

  function buildPinForm(key, names) {
    const select = el("select", { name: "pin-name", "aria-label": "value to pin" }, ...names.map((name) => el("option", { text: name })));
    const input = el("input", { name: "pin-value", size: 6, placeholder: "value", "aria-label": "pinned value" });
    const form = el("form", { class: "pin" }, "pin ", select, " to ", input, " ", el("button", { type: "submit", text: "pin" }));
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      setState(key, { [select.value]: parseValue(input.value, "object") }, form);
    });
    return form;
  }

  function parseValue(raw, kind) {
    const value = raw.trim();
    if (kind === "int" || kind === "float" || kind === "object") {
      const number = Number(value);
      return value !== "" && Number.isFinite(number) ? number : value;  // the API names a bad value
    }
    return value;
  }

  async function setState(key, values, control) {
    const card = document.querySelector(`.device[data-device="${CSS.escape(key)}"]`);
    const message = card.querySelector(".device-error");
    control.dataset.busy = "1";
    try {
      await api("PUT", `/devices/${key}/state`, values);
      message.textContent = "";
    } catch (err) {
      message.textContent = err.message;
    } finally {
      control.dataset.busy = "0";
    }
    refresh();
  }

  async function updatePreview(card, dev) {
    const img = card.querySelector("img[data-camera]");
    if (!img) return;
    const note = card.querySelector(".preview-note");
    const stamp = `${dev.state.ExposureCount}:${dev.state.ImageReady}`;
    if (previews[dev.device_number] === stamp) return;
    previews[dev.device_number] = stamp;
    if (!dev.state.ImageReady) {
      if (img.hidden) note.textContent = "No frame yet: take an exposure.";
      else note.textContent = `exposure ${dev.state.ExposureCount} under way; showing the last frame`;
      return;
    }
    try {
      const resp = await fetch(`${API}/camera/${dev.device_number}/preview.png?exposure=${dev.state.ExposureCount}`,
        { cache: "no-store", credentials: "same-origin" });
      if (!resp.ok) {
        let doc = null;
        try { doc = await resp.json(); } catch (_) { doc = null; }
        note.textContent = (doc && doc.error) || `preview: HTTP ${resp.status}`;
        return;
      }
      const old = img.dataset.url;
      const url = URL.createObjectURL(await resp.blob());
      img.onload = () => { if (old) URL.revokeObjectURL(old); };
      img.dataset.url = url;
      img.src = url;
      img.hidden = false;
      note.textContent = `frame of exposure ${dev.state.ExposureCount}`;
    } catch (err) {
      note.textContent = `preview: ${err.message}`;
    }
  }

  // -- fault rules --------------------------------------------------------------------------------

  const triggerDefaults = Object.fromEntries(
    Object.entries(defs.Trigger.properties).map(([key, prop]) => [key, prop.default === undefined ? null : prop.default]));

  function relevant(rule) {
    if (!focus) return true;
    const [type, number] = focus.split("/");
    const match = rule.match || {};
    return (match.device_type == null || match.device_type === type) &&
      (match.device_number == null || String(match.device_number) === number);
  }

  function triggerSummary(rule) {
    const changed = Object.fromEntries(Object.entries(rule.trigger || {})
      .filter(([key, value]) => key !== "seed" && value !== triggerDefaults[key]));
    return Object.keys(changed).length ? summary(changed) : "always";
  }

  function buildRuleRow(rule) {
    const toggle = el("button", { type: "button", class: "toggle", onclick: () => toggleRule(rule.id, toggle) });
    const remove = el("button", { type: "button", class: "remove", text: "remove", onclick: () => removeRule(rule.id) });
    const cells = ["id", "rule-name", "match", "action", "trigger", "matched", "fired"].map((name) => el("td", { class: name }));
    return el("tr", { "data-rule": rule.id }, ...cells, el("td", { class: "buttons" }, toggle, remove));
  }

  function actionSummary(action) {
    const props = kindDef(action.kind).properties;
    const changed = Object.fromEntries(Object.entries(action)
      .filter(([key, value]) => key !== "kind" && !(props[key] && props[key].default === value)));
    return Object.keys(changed).length ? summary(changed) : "";
  }

  function fillRuleRow(row, rule) {
    const enabled = rule.enabled !== false;
    setText(row.querySelector(".id"), rule.id);
    setText(row.querySelector(".rule-name"), rule.name || "");
    setText(row.querySelector(".match"), summary(rule.match));
    const action = row.querySelector(".action");
    const nodes = [];
    for (const one of rule.actions || [rule.action]) {  // a rule's several actions: "latency ms=500 + bad_json"
      const params = actionSummary(one);
      if (nodes.length) nodes.push(" + ");
      nodes.push(el("b", { text: one.kind }));
      if (params) nodes.push(` ${params}`);
    }
    if (action.textContent !== nodes.map((node) => (typeof node === "string" ? node : node.textContent)).join("")) {
      action.replaceChildren(...nodes);
    }
    setText(row.querySelector(".trigger"), triggerSummary(rule));
    setText(row.querySelector(".matched"), String(rule.matched));
    setText(row.querySelector(".fired"), String(rule.fired));
    row.classList.toggle("disabled", !enabled);
    const toggle = row.querySelector("button.toggle");
    toggle.hidden = !("enabled" in rule);
    toggle.dataset.enabled = enabled ? "1" : "0";
    setText(toggle, enabled ? "disable" : "enable");
  }

  function renderRules(rules) {
    const tbody = document.querySelector("#faults table.rules tbody");
    const shown = rules.filter(relevant);
    const ids = new Set(shown.map((rule) => rule.id));
    for (const row of [...tbody.rows]) if (!ids.has(row.dataset.rule) || !row.querySelector("button.toggle")) row.remove();  // server-rendered rows are rebuilt
    let previous = null;
    for (const rule of shown) {
      let row = tbody.querySelector(`tr[data-rule="${CSS.escape(rule.id)}"]`);
      if (!row) row = buildRuleRow(rule);
      fillRuleRow(row, rule);
      const wanted = previous ? previous.nextElementSibling : tbody.firstElementChild;
      if (wanted !== row) tbody.insertBefore(row, wanted);
      previous = row;
    }
    document.querySelector("#faults .empty").hidden = shown.length > 0;
  }

  async function ruleCall(method, path, body) {
    const message = document.getElementById("rules-message");
    try {
      await api(method, path, body);
      message.textContent = "";
    } catch (err) {
      message.textContent = err.message;
    }
    refresh();
  }

  function toggleRule(id, button) {
    return ruleCall("PATCH", `/faults/${encodeURIComponent(id)}`, { enabled: button.dataset.enabled !== "1" });
  }

  function removeRule(id) {
    return ruleCall("DELETE", `/faults/${encodeURIComponent(id)}`);
  }

  document.getElementById("remove-all").addEventListener("click", () => ruleCall("DELETE", "/faults"));

  // -- the add-a-rule form: built from the rule model's JSON schema -------------------------------

  const form = document.getElementById("rule-form");
  const kindSelect = form.elements["action.kind"];
  const paramsBox = document.getElementById("action-params");

  function schemaType(prop) {
    if (prop.type) return prop.type;
    const types = (prop.anyOf || []).map((part) => part.type).filter((type) => type && type !== "null");
    return types[0] || "string";
  }

  const actionProp = cfg.schema.properties.action;  // the union of kinds, or "that union or null"
  const kindMap = (actionProp.discriminator || (actionProp.anyOf || []).find((part) => part.discriminator).discriminator).mapping;

  function kindDef(kind) {
    const ref = kindMap[kind];
    return defs[ref.split("/").pop()];
  }

  function field(name, label, control, hint) {
    return el("label", { class: "field", title: hint || null },
      el("span", { text: label }), control, el("small", { class: "error", "data-error-for": name }));
  }

  function buildParams() {
    paramsBox.replaceChildren();
    const def = kindDef(kindSelect.value);
    for (const [name, prop] of Object.entries(def.properties)) {
      if (name === "kind") continue;
      const type = schemaType(prop);
      const fieldName = `action.${name}`;
      let control;
      if (prop.enum) {
        control = el("select", { name: fieldName }, el("option", { value: "", text: `(${prop.default})` }),
          ...prop.enum.map((value) => el("option", { text: value })));
      } else {
        const shown = prop.default === undefined || prop.default === null ? "required" : String(prop.default);
        control = el("input", { name: fieldName, size: 10, placeholder: shown, "data-type": type });
      }
      paramsBox.append(field(fieldName, name, control, prop.description));
    }
  }

  function typeFields() {
    form.elements["match.device_number"].dataset.type = "integer";
    for (const [key, prop] of Object.entries(defs.Trigger.properties)) {
      const input = form.elements[`trigger.${key}`];
      if (input) {
        input.dataset.type = schemaType(prop);
        if (prop.default !== undefined && prop.default !== null) input.placeholder = String(prop.default);
      }
    }
  }

  function coerce(value, type) {
    if (type === "integer" || type === "number") {
      const number = Number(value);
      return Number.isFinite(number) ? number : value;  // sent as typed: the model names the field
    }
    return value;
  }

  function collect() {
    const rule = { match: {}, action: { kind: kindSelect.value }, trigger: {} };
    for (const input of form.querySelectorAll("input[name], select[name]")) {
      const [section, key] = input.name.includes(".") ? input.name.split(".", 2) : [null, input.name];
      if (key === "kind" || (section === null && key !== "name")) continue;
      const value = input.value.trim();
      if (value === "") continue;
      if (section) rule[section][key] = coerce(value, input.dataset.type);
      else rule[key] = value;
    }
    for (const section of ["match", "trigger"]) if (!Object.keys(rule[section]).length) delete rule[section];
    return rule;
  }

  function clearErrors() {
    for (const slot of form.querySelectorAll(".error")) slot.textContent = "";
    for (const bad of form.querySelectorAll(".invalid")) bad.classList.remove("invalid");
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearErrors();
    const message = document.getElementById("form-message");
    try {
      const rule = await api("POST", "/faults", collect());
      message.textContent = `added rule ${rule.id}`;
      refresh();
    } catch (err) {
      const unplaced = [];
      for (const { field: name, message: problem } of err.doc.errors || []) {
        const slot = form.querySelector(`[data-error-for="${CSS.escape(name)}"]`);
        if (slot) {
          slot.textContent = problem;
          const input = form.elements[name];
          if (input) input.classList.add("invalid");
        } else {
          unplaced.push(`${name}: ${problem}`);
        }
      }
      message.textContent = unplaced.length ? unplaced.join("; ") : (err.doc.errors ? "see the marked fields" : err.message);
    }
  });

  kindSelect.addEventListener("change", buildParams);

  // -- traffic ------------------------------------------------------------------------------------

  const filters = document.getElementById("traffic-filters");
  const FILTERS = ["device_type", "device_number", "member", "verb", "rule", "limit"];

  function trafficQuery() {
    const query = new URLSearchParams();
    for (const name of FILTERS) {
      const value = filters.elements[name].value.trim();
      if (value) query.set(name, value);
    }
    if (!query.has("limit")) query.set("limit", "50");
    return query;
  }

  function renderTraffic(entries) {
    const rows = entries.slice().reverse().map((entry) => el("tr", { class: entry.rules && entry.rules.length ? "faulted" : null },
      el("td", { text: new Date(entry.time * 1000).toLocaleTimeString() }),
      el("td", { text: entry.client || "" }),
      el("td", { text: entry.verb }),
      el("td", { class: "path", text: entry.path }),
      el("td", { text: entry.status == null ? "-" : String(entry.status) }),
      el("td", { text: entry.error_number ? `0x${entry.error_number.toString(16).toUpperCase()}` : "" }),
      el("td", { text: entry.outcome || "" }),
      el("td", { text: (entry.rules || []).join(", ") }),
      el("td", { text: entry.duration_s == null ? "" : (entry.duration_s * 1000).toFixed(1) })));
    document.querySelector("#traffic table.log tbody").replaceChildren(...rows);
  }

  async function refreshTraffic() {
    if (filters.elements.paused.checked) return;
    const slot = filters.querySelector('[data-error-for="traffic"]');
    try {
      renderTraffic(await api("GET", `/traffic?${trafficQuery()}`));
      slot.textContent = "";
    } catch (err) {
      slot.textContent = err.message;
    }
  }

  filters.addEventListener("submit", (ev) => { ev.preventDefault(); refresh(); });
  filters.addEventListener("change", () => refresh());

  // -- the poll loop ------------------------------------------------------------------------------

  let busy = false;
  let again = false;
  let updates = 0;

  async function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    try {
      const [devices, rules] = await Promise.all([api("GET", "/devices"), api("GET", "/faults")]);
      renderDevices(devices);
      renderRules(rules);
      await refreshTraffic();
      updates += 1;
      document.body.dataset.updates = String(updates);
      statusLine.className = "ok";
      setText(statusLine, `live, updated ${new Date().toLocaleTimeString()}`);
    } catch (err) {
      statusLine.className = "bad";
      setText(statusLine, `control API: ${err.message}`);
    } finally {
      busy = false;
      if (again) { again = false; refresh(); }
    }
  }

  typeFields();
  buildParams();
  refresh();
  setInterval(refresh, pollMs);
})();
