// genq console: live job updates over Server-Sent Events, and the forms
// that submit through the dialects' own routes. No framework: the pages
// are rendered by the server; this only follows events and sends forms.
// Every request it makes is same-origin, with the session cookie and the
// page's CSRF token.
"use strict";

(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";

  function api(method, path, body, headers) {
    const init = { method, credentials: "same-origin", headers: { "X-CSRF-Token": csrf, ...(headers || {}) } };
    if (body !== undefined) {
      if (body instanceof FormData) {
        init.body = body;
      } else {
        init.body = JSON.stringify(body);
        init.headers["Content-Type"] = "application/json";
      }
    }
    return fetch(path, init);
  }

  // Whatever shape a dialect's error takes, its message.
  async function errorMessage(response) {
    let text = "";
    try {
      text = await response.text();
      const body = JSON.parse(text);
      const message = body?.error?.message || body?.message || body?.error || body?.detail;
      if (typeof message === "string") return message;
      if (Array.isArray(message)) return message.join("; ");
    } catch (_) { /* not JSON */ }
    return text || `The server answered ${response.status}.`;
  }

  function showFormError(form, message) {
    const box = form.querySelector('[data-field="form-error"]');
    if (!box) return;
    box.textContent = message;
    box.hidden = !message;
  }

  function busy(form, on) {
    for (const button of form.querySelectorAll('button[type="submit"]')) button.disabled = on;
  }

  // Sends a form's request and, once accepted, opens the page its answer
  // names (`pageOf(body)`); a refusal is shown in the form.
  async function send(form, method, path, body, pageOf) {
    busy(form, true);
    try {
      const response = await api(method, path, body);
      if (!response.ok) throw new Error(await errorMessage(response));
      location.assign(pageOf(await response.json()));
    } catch (error) {
      showFormError(form, error.message);
      busy(form, false);
    }
  }

  // ---- live progress ----

  function setProgress(bar, progress) {
    if (!bar) return;
    const value = String(progress);
    if (bar.getAttribute("aria-valuenow") === value) return;
    bar.setAttribute("aria-valuenow", value);
    bar.setAttribute("aria-valuetext", `${value}%`);
    const meter = bar.querySelector("progress");
    if (meter) meter.value = progress;
    const pct = bar.querySelector(".pct");
    if (pct) pct.textContent = `${value}%`;
  }

  const TERMINAL = new Set(["COMPLETED", "FAILED", "CANCELLED"]);

  function follow(onJob) {
    const source = new EventSource("/console/events");
    source.addEventListener("job", (event) => {
      let job;
      try { job = JSON.parse(event.data); } catch (_) { return; }
      onJob(job);
    });
    // EventSource reconnects by itself (sending Last-Event-ID); nothing to do.
    window.addEventListener("pagehide", () => source.close());
    return source;
  }

  function jobsList(table) {
    const body = table.tBodies[0];
    const template = document.getElementById("job-row-template");
    const addNew = table.hasAttribute("data-add-new");
    follow((job) => {
      let row = body.querySelector(`tr[data-job-id="${CSS.escape(job.id)}"]`);
      if (!row) {
        if (!addNew || !template) return;
        row = template.content.firstElementChild.cloneNode(true);
        row.dataset.jobId = job.id;
        const link = row.querySelector("a");
        link.href = `/console/jobs/${encodeURIComponent(job.id)}`;
        link.textContent = job.id;
        row.querySelector('[data-field="dialect"]').textContent = job.dialect;
        row.querySelector('[data-field="what"]').textContent = job.what;
        row.querySelector('[data-field="created"]').textContent = job.created;
        row.querySelector('[data-field="progress"]').setAttribute("aria-label", `Progress of job ${job.id}`);
        body.prepend(row);
        document.querySelector("p.empty")?.remove();
      }
      row.dataset.state = job.state;
      row.querySelector('[data-field="status"]').textContent = job.status;
      setProgress(row.querySelector('[role="progressbar"]'), job.progress);
      if (!job.cancellable) row.querySelector('[data-field="cancel"]')?.remove();
    });
  }

  function jobPage(root) {
    const id = root.dataset.liveJob;
    const status = document.getElementById("job-status");
    const bar = root.querySelector('[role="progressbar"]');
    const timeline = document.getElementById("timeline");
    let finished = TERMINAL.has(status.dataset.state);
    let lastShown = `${status.dataset.state}:${bar?.getAttribute("aria-valuenow")}`;
    const source = follow(async (job) => {
      if (job.id !== id) return;
      const shown = `${job.state}:${job.progress}`;
      if (shown === lastShown) return;
      lastShown = shown;
      status.textContent = job.status;
      status.dataset.state = job.state;
      setProgress(bar, job.progress);
      const item = document.createElement("li");
      const time = document.createElement("time");
      const at = new Date(job.updatedAt);
      time.dateTime = at.toISOString();
      time.textContent = at.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
      item.append(time, ` ${job.state === "PROCESSING" ? `Progress ${job.progress}%` : job.status}`);
      timeline.append(item);
      if (!job.cancellable) document.querySelector("#job-actions form")?.remove();
      if (TERMINAL.has(job.state) && !finished) {
        finished = true;
        source.close();
        await refreshSections();
      }
    });
    // A finished job's webhook is sent just after: look again a moment later.
    async function refreshSections() {
      const response = await fetch(location.pathname, { credentials: "same-origin" });
      if (!response.ok) return;
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      for (const selector of ["#outputs", "#job-error", "#timeline", "#webhooks", "#job-actions"]) {
        const fresh = page.querySelector(selector);
        const old = document.querySelector(selector);
        if (fresh && old) old.replaceWith(document.adoptNode(fresh));
      }
    }
  }

  // ---- New video (Image+Audio Video API) ----

  function videoForm(form) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      showFormError(form, "");
      const image = form.querySelector("#image");
      const audio = form.querySelector("#audio");
      if (!image.files.length || !audio.files.length) {
        showFormError(form, "Choose an image and an audio file.");
        (image.files.length ? audio : image).focus();
        return;
      }
      const data = new FormData();
      data.append("image", image.files[0]);
      data.append("audio", audio.files[0]);
      const webhook = form.querySelector("#webhook_url").value.trim();
      if (webhook) data.append("webhookUrl", webhook);
      await send(form, "POST", "/api/jobs", data, (body) => `/console/jobs/${encodeURIComponent(body.jobId)}`);
    });
  }

  // ---- Models (Jobs v1): the form made from the schema ----

  function fieldValue(field) {
    const control = field.querySelector("input, select, textarea");
    const type = field.dataset.type;
    if (control.type === "checkbox") return { present: true, value: control.checked };
    const raw = control.value.trim();
    if (raw === "") return { present: false };
    if (type === "number" || type === "integer") return { present: true, value: Number(raw), raw };
    if (type === "json") {
      try { return { present: true, value: JSON.parse(raw), raw }; } catch (_) { return { present: true, invalidJson: true, raw }; }
    }
    return { present: true, value: raw, raw };
  }

  // The schema's constraints, in the schema's words.
  function check(field, entry) {
    const name = field.dataset.input;
    const d = field.dataset;
    if (!entry.present) return "required" in d ? `${name} is required.` : "";
    if (entry.invalidJson) return `${name} must be JSON.`;
    const v = entry.value;
    if (d.type === "number" || d.type === "integer") {
      if (!Number.isFinite(v)) return `${name} must be a number.`;
      if (d.type === "integer" && !Number.isInteger(v)) return `${name} must be a whole number.`;
      if (d.min !== undefined && v < Number(d.min)) return `${name} must be at least ${d.min}.`;
      if (d.max !== undefined && v > Number(d.max)) return `${name} must be at most ${d.max}.`;
    }
    if (typeof v === "string") {
      const length = [...v].length;
      if (d.minlength !== undefined && length < Number(d.minlength)) return `${name} must be at least ${d.minlength} characters long.`;
      if (d.maxlength !== undefined && length > Number(d.maxlength)) return `${name} must be at most ${d.maxlength} characters long.`;
      if (d.pattern !== undefined) {
        let matches = true;
        try { matches = new RegExp(d.pattern, "u").test(v); } catch (_) { /* the server judges */ }
        if (!matches) return `${name} must match the pattern ${d.pattern}.`;
      }
      if ("url" in d) {
        let url = null;
        try { url = new URL(v); } catch (_) { /* reported below */ }
        if (!url || !["http:", "https:", "data:"].includes(url.protocol)) return `${name} must be an http(s) URL.`;
      }
    }
    return "";
  }

  function modelForm(form) {
    const fields = [...form.querySelectorAll("[data-input]")];
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      showFormError(form, "");
      const input = {};
      let firstBad = null;
      for (const field of fields) {
        const entry = fieldValue(field);
        const message = check(field, entry);
        const control = field.querySelector("input, select, textarea");
        field.querySelector(".field-error").textContent = message;
        control.setAttribute("aria-invalid", message ? "true" : "false");
        if (message && !firstBad) firstBad = control;
        if (!message && entry.present) input[field.dataset.input] = entry.value;
      }
      if (firstBad) {
        firstBad.focus();
        return;
      }
      const request = { model: form.dataset.model, input };
      const webhook = form.querySelector("#webhook_url").value.trim();
      if (webhook) request.webhookUrl = webhook;
      await send(form, "POST", "/v1/jobs/submit", request, (body) => `/console/jobs/${encodeURIComponent(body.jobId)}`);
    });
  }

  // ---- Projects (Provider): editor and "Use", both with a live preview ----

  function previewer(path, bodyOf) {
    const img = document.getElementById("preview");
    const status = document.querySelector('[data-field="preview-status"]');
    let timer = null;
    let generation = 0;
    let url = null;
    async function draw() {
      const body = bodyOf();
      if (body === null) return;
      const mine = ++generation;
      const response = await api("POST", path, body);
      if (mine !== generation) return;
      if (!response.ok) {
        status.textContent = `No preview: ${await errorMessage(response)}`;
        return;
      }
      const blob = await response.blob();
      if (mine !== generation) return;
      if (url) URL.revokeObjectURL(url);
      url = URL.createObjectURL(blob);
      img.src = url;
      img.hidden = false;
      status.textContent = "Preview (pictures are drawn as placeholders).";
    }
    return {
      soon() {
        clearTimeout(timer);
        timer = setTimeout(draw, 300);
      },
      now: draw,
    };
  }

  function projectEditor(form) {
    const id = form.dataset.projectEditor;
    const textarea = form.querySelector("#template");
    const preview = previewer("/api/provider/preview", () => {
      try {
        const template = JSON.parse(textarea.value);
        showFormError(form, "");
        return { template };
      } catch (error) {
        showFormError(form, `The template is not valid JSON: ${error.message}`);
        return null;
      }
    });
    textarea.addEventListener("input", preview.soon);
    preview.now();
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      let template;
      try {
        template = JSON.parse(textarea.value);
      } catch (error) {
        showFormError(form, `The template is not valid JSON: ${error.message}`);
        textarea.focus();
        return;
      }
      const [method, path] = id
        ? ["PUT", `/api/provider/projects/${encodeURIComponent(id)}`]
        : ["POST", "/api/provider/projects"];
      await send(form, method, path, template, (body) => `/console/projects/${encodeURIComponent(body.data.projectId)}`);
    });
  }

  function readAsDataUrl(file) {
    return new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(reader.result);
      reader.onerror = () => reject(reader.error);
      reader.readAsDataURL(file);
    });
  }

  function projectUse(form) {
    const id = form.dataset.projectUse;
    const fields = [...form.querySelectorAll("[data-value]")];
    const uploads = new Map();
    const texts = () => {
      const values = {};
      for (const field of fields) {
        if (field.dataset.kind !== "text") continue;
        const text = field.querySelector("textarea").value;
        if (text !== "") values[field.dataset.value] = text;
      }
      return values;
    };
    const preview = previewer(`/api/provider/projects/${encodeURIComponent(id)}/preview`, () => ({ values: texts() }));
    for (const field of fields) {
      field.addEventListener("input", preview.soon);
      const file = field.querySelector('input[type="file"]');
      if (file) {
        file.addEventListener("change", async () => {
          if (file.files.length) uploads.set(field.dataset.value, await readAsDataUrl(file.files[0]));
          else uploads.delete(field.dataset.value);
        });
      }
    }
    preview.now();
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      showFormError(form, "");
      const values = texts();
      for (const field of fields) {
        if (field.dataset.kind === "text") continue;
        const url = field.querySelector('input[type="url"]').value.trim();
        const value = uploads.get(field.dataset.value) || url;
        if (value) values[field.dataset.value] = value;
      }
      const missing = fields.find((f) => "required" in f.dataset && !(f.dataset.value in values));
      if (missing) {
        showFormError(form, `${missing.querySelector("legend").textContent.replace("*", "").trim()} is required.`);
        missing.querySelector("textarea, input").focus();
        return;
      }
      const request = { project_id: id, job_type: form.querySelector("#job_type").value, values };
      const music = form.querySelector("#background_music").value.trim();
      if (music) {
        request.background_music = music;
        request.background_volume = Number(form.querySelector("#background_volume").value);
        request.background_start = Number(form.querySelector("#background_start").value);
      }
      const session = form.querySelector("#session_id").value.trim();
      if (session) request.session_id = session;
      const webhook = form.querySelector("#webhook_url").value.trim();
      if (webhook) request.webhook_url = webhook;
      await send(form, "POST", "/jobs/v2", request, (body) => `/console/jobs/${encodeURIComponent(body.job?.uuid || body.job?.id)}`);
    });
  }

  const liveJobs = document.querySelector("[data-live-jobs]");
  if (liveJobs) jobsList(liveJobs);
  const liveJob = document.querySelector("[data-live-job]");
  if (liveJob) jobPage(liveJob);
  for (const form of document.querySelectorAll('form[data-submit="video"]')) videoForm(form);
  for (const form of document.querySelectorAll('form[data-submit="model"]')) modelForm(form);
  for (const form of document.querySelectorAll("form[data-project-editor]")) projectEditor(form);
  for (const form of document.querySelectorAll("form[data-project-use]")) projectUse(form);
})();
