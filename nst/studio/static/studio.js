// The studio page: uploads, the settings form, starting and stopping jobs, the live view
// (pushed by the server as server-sent events), the queue and the gallery of past runs.
"use strict";

const $ = (id) => document.getElementById(id);
const chosen = { content: null, styles: [] }; // uploads: {id, name}
let fields = [];
let watched = null; // the job shown in the live view
const jobs = new Map();
const uploading = new Set(); // uploads on their way: Start waits for them
const SAVED = "nst-studio-settings"; // the form, kept in this browser across reloads

async function api(path, options = {}) {
  const response = await fetch(path, options);
  const body = response.headers.get("content-type")?.includes("json") ? await response.json() : null;
  if (!response.ok) throw new Error(body?.error || `${response.status} ${response.statusText}`);
  return body;
}

function say(text, error = false, where = "message") {
  const message = $(where);
  message.textContent = text;
  message.className = error ? "error" : "";
}

// Uploads speak beside the drop zones, where the user is looking.
const sayPictures = (text, error = false) => say(text, error, "pictures-message");

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "onclick") node.onclick = value;
    else if (value !== undefined && value !== null) node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

// -- pictures ----------------------------------------------------------------------------

function upload(file, role) {
  sayPictures(`Uploading ${file.name} …`);
  const form = new FormData();
  form.append("file", file);
  const sending = (async () => {
    try {
      const info = await api("/api/uploads", { method: "POST", body: form });
      choose(info, role);
      sayPictures("");
      loadRecent();
      return true;
    } catch (error) {
      sayPictures(`${file.name}: ${error.message}`, true);
      return false;
    }
  })();
  uploading.add(sending);
  drawStart();
  sending.finally(() => { uploading.delete(sending); drawStart(); });
  return sending;
}

function drawStart() {
  const busy = uploading.size > 0;
  $("start").textContent = busy ? "Uploading …" : "Start";
  $("start").title = busy ? "Start waits for the uploads to finish" : "";
}

function choose(info, role) {
  if (role === "content") chosen.content = info;
  else if (!chosen.styles.some((s) => s.id === info.id)) chosen.styles.push({ ...info, weight: 1 });
  drawChosen();
}

function thumb(info, onRemove, extra = []) {
  const img = element("img", { src: `/api/uploads/${info.id}/thumbnail.jpg`, alt: info.name, title: info.name });
  const remove = element("button", { type: "button", title: "Remove", onclick: onRemove }, "×");
  const badge = info.kind === "video"
    ? [element("span", { class: "video-badge" }, `▶ ${info.seconds.toFixed(1)} s`)] : [];
  return element("div", { class: "thumb" }, img, remove, ...badge, ...extra);
}

// A blend's weight per painting, shown once there are two or more.
function blendInput(style) {
  const input = element("input", { type: "number", min: 0, step: "any", value: style.weight ?? 1,
    class: "blend", title: `How much of ${style.name} in the blend`, "aria-label": `weight of ${style.name}` });
  input.oninput = () => { style.weight = input.value === "" ? null : Number(input.value); };
  return input;
}

function drawChosen() {
  $("content-thumbs").replaceChildren(
    ...(chosen.content ? [thumb(chosen.content, () => { chosen.content = null; drawChosen(); })] : []),
  );
  $("style-thumbs").replaceChildren(
    ...chosen.styles.map((s) => thumb(s, () => { chosen.styles = chosen.styles.filter((o) => o !== s); drawChosen(); },
      chosen.styles.length > 1 ? [blendInput(s)] : [])),
  );
}

function dropZone(zone, input, role) {
  const files = (list) => [...list].slice(0, role === "content" ? 1 : 8).forEach((f) => upload(f, role));
  input.onchange = () => { files(input.files); input.value = ""; };
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => { e.preventDefault(); zone.classList.remove("over"); files(e.dataTransfer.files); });
}

async function loadRecent() {
  const recent = await api("/api/uploads");
  $("recent").replaceChildren(...recent.map((info) => {
    const img = element("img", { src: `/api/uploads/${info.id}/thumbnail.jpg`, alt: info.name, title: info.name });
    const as = element("div", { class: "as" },
      element("button", { type: "button", onclick: () => choose(info, "content") }, "photo"),
      element("button", { type: "button", onclick: () => choose(info, "style") }, "painting"));
    return element("div", { class: "thumb" }, img, as);
  }));
  if (!recent.length) $("recent").replaceChildren(element("span", { class: "hint" }, "Nothing uploaded yet."));
}

// -- settings ----------------------------------------------------------------------------

function drawForm() {
  const form = $("settings");
  form.replaceChildren(...fields.map((f) => {
    let input;
    if (f.kind === "choice") {
      input = element("select", { id: `f-${f.name}`, name: f.name },
        ...f.choices.map(([value, label]) => element("option", { value }, label)));
      input.value = f.default;
    } else if (f.kind === "toggle") {
      input = element("input", { id: `f-${f.name}`, name: f.name, type: "checkbox" });
      input.checked = f.default;
    } else {
      const number = f.kind === "number";
      input = element("input", {
        id: `f-${f.name}`, name: f.name, type: number ? "number" : "text", value: f.default,
        min: f.min, max: f.max, step: number ? (f.step ?? "any") : null,
      });
    }
    const shown = f.kind === "choice" ? f.choices.find((c) => c[0] === f.default)[1] : f.kind === "toggle" ? (f.default ? "on" : "off") : f.default;
    const control = f.name === "style_weight" ? element("div", { class: "with-slider" }, logSlider(input), input) : input;
    return element("div", { class: "field", id: `field-${f.name}` },
      element("label", { for: `f-${f.name}` }, f.label), control,
      element("small", { class: "why", id: `why-${f.name}`, role: "alert" }),
      element("small", {}, `${f.hint} Default: ${shown}.`));
  }));
  form.oninput = form.onchange = () => { checkForm(); localStorage.setItem(SAVED, JSON.stringify(rawValues())); };
}

// Style weight spans orders of magnitude: a slider over its logarithm, beside the number.
function logSlider(number) {
  const slider = element("input", { type: "range", min: 2, max: 10, step: 0.1, id: "f-style_weight-log",
    "aria-label": "style weight, logarithmic", class: "log" });
  const follow = () => { const v = Number(number.value); if (number.value !== "" && v > 0) slider.value = Math.log10(v); };
  slider.oninput = () => { number.value = Number((10 ** Number(slider.value)).toPrecision(2)); };
  number.addEventListener("input", follow);
  number.addEventListener("change", follow);
  setTimeout(follow);
  return slider;
}

function rawValues() {
  const values = {};
  for (const f of fields) {
    const input = $(`f-${f.name}`);
    values[f.name] = f.kind === "toggle" ? input.checked : input.value;
  }
  return values;
}

// Each field's problem beside it; a field left empty or holding letters is never sent as 0.
function checkForm() {
  const problems = [];
  for (const f of fields.filter((f) => f.kind === "number")) {
    const input = $(`f-${f.name}`);
    const number = Number(input.value);
    let why = "";
    if (input.validity.badInput) why = "not a number";
    else if (input.value.trim() === "") why = "empty: give a number";
    else if (!Number.isFinite(number)) why = "not a number";
    else if (f.min !== null && number < f.min) why = `at least ${f.min}`;
    else if (f.max !== null && number > f.max) why = `at most ${f.max}`;
    $(`why-${f.name}`).textContent = why;
    $(`field-${f.name}`).classList.toggle("invalid", Boolean(why));
    if (why) problems.push(`${f.label}: ${why}`);
  }
  return problems;
}

function formValues() {
  const values = rawValues();
  for (const f of fields) if (f.kind === "number") values[f.name] = Number(values[f.name]);
  return values;
}

function fillForm(values) {
  for (const f of fields) {
    if (!(f.name in values)) continue;
    const input = $(`f-${f.name}`);
    if (f.kind === "toggle") input.checked = Boolean(values[f.name]);
    else if (f.kind !== "choice" || f.choices.some((c) => c[0] === values[f.name])) input.value = values[f.name];
    input.dispatchEvent(new Event("change"));
  }
}

function newSeed() {
  $("f-seed").value = Math.floor(Math.random() * 2 ** 31);
}

async function start() {
  $("start").disabled = true;
  try {
    if (uploading.size) { // the pictures still on their way are part of this run
      say("Waiting for the uploads …");
      const sent = await Promise.all([...uploading]);
      if (!sent.every(Boolean)) throw new Error("an upload failed (see above): choose the picture again");
    }
    const problems = checkForm();
    if (problems.length) throw new Error(problems.join("; "));
    const blend = chosen.styles.length > 1 ? chosen.styles.map((s) => s.weight) : null;
    if (blend && blend.some((w) => w === null || !(w >= 0))) throw new Error("each painting's weight is a number, 0 or more");
    const job = await api("/api/jobs", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ content: chosen.content?.id ?? null, styles: chosen.styles.map((s) => s.id), settings: formValues(), blend }),
    });
    watched = job.id;
    say(job.ahead > 0 ? "Queued: it starts when the run before it ends." : "Started.");
    update(job);
    // On a phone the live view is far above the button: take the user there.
    if (window.matchMedia("(max-width: 820px)").matches) $("watch").scrollIntoView({ behavior: "smooth" });
  } catch (error) {
    say(error.message, true);
  } finally {
    $("start").disabled = false;
  }
}

// -- live --------------------------------------------------------------------------------

function seconds(value) {
  if (value === null || value === undefined) return "–";
  if (value < 1) return "under a second";
  if (value < 60) return `${Math.round(value)} s`;
  return `${Math.floor(value / 60)} min ${Math.round(value % 60)} s`;
}

function drawCurve(points) {
  const svg = $("curve");
  if (points.length < 2) { svg.replaceChildren(); return; }
  const ys = points.map((p) => Math.log10(Math.max(p[1], 1e-12)));
  const [x0, x1] = [points[0][0], points[points.length - 1][0]];
  const [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  const d = points.map((p, i) => {
    const x = ((p[0] - x0) / Math.max(x1 - x0, 1)) * 296 + 2;
    const y = 76 - ((ys[i] - y0) / Math.max(y1 - y0, 1e-9)) * 72;
    return `${i ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`;
  }).join("");
  const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
  path.setAttribute("d", d);
  svg.replaceChildren(path);
}

function drawLive(job) {
  document.body.classList.add("watching"); // on a phone the live view comes first from now on
  $("idle").hidden = true;
  $("progress").hidden = false;
  const live = $("live");
  if (job.live) {
    const src = `/api/jobs/${job.id}/live.jpg?v=${job.live}`;
    if (live.dataset.src !== src) { live.dataset.src = src; live.src = src; live.dataset.version = job.live; }
    live.hidden = false;
  } else { // never another job's picture above this one's status
    live.hidden = true;
    live.removeAttribute("src");
    delete live.dataset.src;
  }
  const total = job.total || 0;
  $("bar-fill").style.width = total ? `${(100 * job.step) / total}%` : "0";
  $("step").textContent = `step ${job.step} / ${total || "…"}`;
  // A continued run's title names it already.
  $("job-title").textContent = job.label && !job.title.includes(job.label) ? `${job.title} · ${job.label}` : job.title;
  if (job.kind === "video") {
    const frames = job.frames_total || 0;
    $("bar-fill").style.width = frames ? `${(100 * job.frames_done) / frames}%` : "0";
    $("step").textContent = `frame ${Math.min(job.frames_done + 1, frames || Infinity)} / ${frames || "…"} · step ${job.step} / ${total || "…"}`;
  }
  drawFrames(job);
  $("rate").textContent = job.rate ? `${job.rate.toFixed(job.rate < 10 ? 2 : 0)} steps/s` : "–";
  $("eta").textContent = job.eta !== null && job.eta !== undefined ? `${seconds(job.eta)} left` : "";
  const losses = Object.entries(job.losses || {});
  $("losses").replaceChildren(...(losses.length ? [element("span", { class: "hint" }, `at step ${job.losses_step ?? job.step}:`)] : []),
    ...losses.map(([k, v]) => element("span", {}, `${k} ${v.toPrecision(4)}`)));
  drawCurve(job.curve || []);
  const words = { queued: job.ahead > 0 ? `waiting in the queue (${job.ahead} ahead)` : "starting …", running: "running", stopping: "stopping after this step …",
    finished: "finished", stopped: "stopped (continue it from the gallery)", failed: `failed: ${job.error}` };
  $("job-status").textContent = words[job.status] || job.status;
  $("job-status").className = job.status === "failed" ? "error" : "";
  $("stop").disabled = !["queued", "running"].includes(job.status);
}

// A video's finished frames, newest last, as they come; the mp4 once it is written.
function drawFrames(job) {
  const strip = $("frames");
  if (job.kind !== "video" || !job.run) { strip.hidden = true; strip.replaceChildren(); return; }
  strip.hidden = false;
  const run = encodeURIComponent(job.run);
  const first = Math.max(0, job.frames_done - 8);
  const key = `${job.id}:${job.frames_done}:${job.status}`;
  if (strip.dataset.key === key) return;
  strip.dataset.key = key;
  const frames = [];
  for (let i = first; i < job.frames_done; i++) {
    frames.push(element("img", { src: `/api/runs/${run}/frames/${i}.jpg`, alt: `frame ${i + 1}`, title: `frame ${i + 1}` }));
  }
  const done = job.status === "finished"
    ? [element("a", { href: `/api/runs/${run}/video.mp4`, download: "", class: "download" }, "Download video.mp4")] : [];
  strip.replaceChildren(element("span", { class: "hint" }, `${job.frames_done} frames finished`), ...frames, ...done);
}

function drawQueue() {
  const waiting = [...jobs.values()].filter((j) => ["queued", "running", "stopping"].includes(j.status));
  $("queue").replaceChildren(...waiting.map((j) => element("li", {},
    `${j.title} — ${j.status}${j.status === "running" ? (j.kind === "video" ? ` (frame ${j.frames_done + 1}/${j.frames_total || "…"})` : ` (${j.step}/${j.total})`) : ""} `,
    element("button", { type: "button", class: "quiet", onclick: () => stopJob(j.id) }, "stop"))));
  $("queue-empty").hidden = waiting.length > 0;
}

const isActive = (job) => ["queued", "running", "stopping"].includes(job.status);

function update(job) {
  const before = jobs.get(job.id);
  jobs.set(job.id, job);
  // The live view follows the running job, else the newest (a fresh page is sent the oldest first).
  const shown = jobs.get(watched);
  if (!shown || (job.status === "running" && shown.status !== "running")
      || (!isActive(shown) && Number(job.id) > Number(shown.id))) watched = job.id;
  if (job.id === watched) drawLive(job);
  drawQueue();
  if (before && before.status !== job.status && ["finished", "stopped", "failed"].includes(job.status)) loadGallery();
}

async function stopJob(id) {
  try { update(await api(`/api/jobs/${id}/stop`, { method: "POST" })); } catch (error) { say(error.message, true); }
}

function listen() {
  const events = new EventSource("/api/events");
  events.onmessage = (message) => {
    const event = JSON.parse(message.data);
    if (event.type === "job") update(event.job);
  };
  // EventSource reconnects by itself after a server restart.
}

// -- gallery -----------------------------------------------------------------------------

async function loadGallery() {
  const entries = await api("/api/runs");
  const settings = await api("/api/settings");
  $("gallery").replaceChildren(...entries.map((run) => {
    const img = run.picture
      ? element("img", { src: `/api/runs/${encodeURIComponent(run.id)}/thumbnail.jpg?t=${run.time}`, alt: run.label,
        loading: "lazy", title: "See it at full size, beside its pictures", class: "zoom", onclick: () => view(run) })
      : element("div", { class: `no-picture ${run.status}` }, run.status === "damaged" ? "damaged checkpoint" : "no picture yet");
    const losses = Object.entries(run.losses).map(([k, v]) => `${k} ${Number(v).toPrecision(3)}`).join(" · ");
    const what = [run.content, ...(run.style || [])].filter(Boolean).join(" × ");
    const links = element("div", { class: "links" });
    if (run.kind === "video" && run.status === "finished") {
      links.append(element("a", { href: `/api/runs/${encodeURIComponent(run.id)}/video.mp4`, download: "" }, "Video (mp4)"));
    }
    if (run.picture) {
      for (const [ext, label] of [["png", "PNG"], ["jpg", "JPEG"], ["tif", "16-bit TIFF"]]) {
        links.append(element("a", { href: `/api/runs/${encodeURIComponent(run.id)}/picture.${ext}`, download: "" }, label));
      }
    }
    links.append(element("button", { type: "button", class: "again", onclick: () => runAgain(run) }, "Run again"));
    if (run.continuable) {
      links.append(element("button", { type: "button", class: "continue", onclick: () => continueRun(run) }, "Continue"));
    }
    if (run.picture) {
      links.append(element("button", { type: "button", class: "as-photo", onclick: () => asPhoto(run) }, "Use as photo"));
      if (run.kind !== "video" && run.form.size * 2 <= 4096) {
        links.append(element("button", { type: "button", class: "larger", onclick: () => larger(run) }, `Again at ${run.form.size * 2} px`));
      }
    }
    links.append(element("button", { type: "button", class: "remove quiet", onclick: () => removeRun(run) }, "Remove"));
    if (settings.tensorboard) {
      const filter = encodeURIComponent(`${run.name}/${run.version}`);
      links.append(element("a", { href: `${settings.tensorboard}/?runFilter=${filter}#timeseries`, target: "_blank", rel: "noopener" }, "TensorBoard"));
    }
    const when = new Date(run.time * 1000).toLocaleString();
    return element("div", { class: "card", "data-run": run.id }, img,
      element("div", { class: "body" },
        element("div", { class: "title" }, `${run.label} `, element("span", { class: `badge ${run.status}` }, run.status)),
        element("div", { class: "hint" }, (what || "—") + (run.kind === "video" ? ` · video, ${run.frames} frames painted` : "")),
        element("div", { class: "hint settings-line" }, settingsLine(run.form)),
        element("div", { class: "hint" }, `${when} · ${seconds(run.seconds)}`),
        element("div", { class: "hint" }, losses || "no losses yet"),
        links));
  }));
  if (!entries.length) $("gallery").replaceChildren(element("p", { class: "hint" }, "No runs in logs/ yet."));
}

function runAgain(run) {
  fillForm(run.form);
  if (run.uploads) {
    chosen.content = run.uploads.content;
    chosen.styles = run.uploads.styles;
    drawChosen();
  }
  newSeed(); // the same settings, a different picture
  say(`Settings of ${run.label} filled in${run.uploads ? ", with its pictures" : ""}, with a new seed.`);
  window.scrollTo({ top: 0, behavior: "smooth" });
}

function settingsLine(form) {
  const parts = [`${form.size} px`, `${form.steps} steps`, form.optimizer === "adam" ? "Adam" : "L-BFGS",
    `style ${Number(form.style_weight).toExponential(0)}`];
  if (form.multi_scale) parts.push("multi-scale");
  if (form.colours && form.colours !== "none") parts.push(`colours: ${form.colours}`);
  if (form.weights && form.weights !== "imagenet") parts.push(`weights: ${form.weights}`);
  return parts.join(" · ");
}

async function continueRun(run) {
  await submitted(`/api/runs/${encodeURIComponent(run.id)}/continue`, {}, `Continuing ${run.label}.`);
}

async function larger(run) {
  const size = run.form.size * 2;
  await submitted(`/api/runs/${encodeURIComponent(run.id)}/larger`, { settings: { size } },
    `${run.label} again at ${size} px, from its picture.`);
}

async function submitted(path, body, text) {
  try {
    const job = await api(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    watched = job.id;
    update(job);
    say(text);
    $("watch").scrollIntoView({ behavior: "smooth" });
  } catch (error) {
    say(error.message, true);
  }
}

async function asPhoto(run) {
  try {
    const info = await api(`/api/runs/${encodeURIComponent(run.id)}/as-photo`, { method: "POST" });
    choose(info, "content");
    loadRecent();
    sayPictures(`The result of ${run.label} is the photo now.`);
    window.scrollTo({ top: 0, behavior: "smooth" });
  } catch (error) {
    say(error.message, true);
  }
}

async function removeRun(run) {
  if (!confirm(`Remove ${run.label} from the gallery? Its folder is moved to logs/.removed/, not deleted.`)) return;
  try {
    await api(`/api/runs/${encodeURIComponent(run.id)}/remove`, { method: "POST" });
    loadGallery();
  } catch (error) {
    say(error.message, true);
  }
}

// The result at full size, beside the photo and paintings it was made from.
function view(run) {
  const box = $("viewer");
  // Fitted to the window; its caption opens it at 100 %.
  const figure = (src, caption) => element("figure", {}, element("img", { src, alt: caption }),
    element("figcaption", {}, element("a", { href: src, target: "_blank", rel: "noopener", title: "Open at 100 %" }, caption)));
  const sources = [];
  if (run.uploads?.content) sources.push(figure(`/api/uploads/${run.uploads.content.id}/full.jpg`, `photo: ${run.uploads.content.name}`));
  for (const s of run.uploads?.styles || []) sources.push(figure(`/api/uploads/${s.id}/full.jpg`, `painting: ${s.name}`));
  $("viewer-pictures").replaceChildren(
    figure(`/api/runs/${encodeURIComponent(run.id)}/picture.jpg/full?t=${run.time}`, `${run.label} · ${run.form.size} px`), ...sources);
  $("viewer-title").textContent = [run.content, ...(run.style || [])].filter(Boolean).join(" × ") || run.label;
  box.showModal();
}

// -- instant styles ----------------------------------------------------------------------
// A trained network paints the photo in one request; the photo stays in the page (nothing is
// kept on the server) and is sent again when another network or size is picked.

const instant = { network: null, style: "", file: null, photoUrl: null, resultUrl: null, asked: 0 };

function sayInstant(text, error = false) {
  const message = $("instant-message");
  message.textContent = text;
  message.className = error ? "error" : "";
}

async function loadNetworks() {
  let listed;
  try {
    listed = await api("/api/networks");
  } catch (error) {
    sayInstant(error.message, true);
    return;
  }
  const box = $("networks");
  if (!listed.networks.some((n) => n.id === instant.network && n.usable)) instant.network = null;
  $("instant").classList.toggle("none", !listed.networks.length); // nothing to paint with: no photo asked for
  if (!listed.networks.length) {
    // The command breaks only between its words, never inside "--data.style".
    const words = listed.how.split(" ").flatMap((word, i) => [...(i ? [" "] : []), element("span", { class: "word" }, word)]);
    box.replaceChildren(element("p", { class: "hint empty" }, "No trained networks yet. Train one on a painting with ",
      element("code", {}, ...words), " and it is listed here once its network.pt is written."));
    return;
  }
  box.replaceChildren(...listed.networks.map((n) => {
    const picture = n.usable
      ? element("img", { src: `/api/networks/${encodeURIComponent(n.id)}/preview.jpg?t=${n.time}`, alt: "", loading: "lazy" })
      : element("span", { class: "unusable" }, "cannot paint");
    // A run's place may break after its slashes, not inside "version_0".
    const run = n.run.split("/").flatMap((part, i) => (i ? [element("wbr"), `/${part}`] : [part]));
    const steps = n.steps !== null && n.steps !== undefined ? [element("span", { class: "hint" }, `${n.steps} steps`)] : [];
    const card = element("button", {
      type: "button", class: "network", role: "radio", "data-network": n.id, title: n.error || n.name,
      "aria-checked": String(n.id === instant.network), disabled: n.usable ? null : "",
    }, picture, element("span", { class: "name" }, n.usable ? n.style.replace(/[_-]+/g, " ") : "unreadable"),
    element("span", { class: "hint" }, ...run), ...steps, ...(n.error ? [element("span", { class: "why" }, n.error)] : []));
    card.onclick = () => pickNetwork(n);
    return card;
  }));
}

function pickNetwork(network) {
  instant.network = network.id;
  instant.style = network.style;
  for (const card of $("networks").querySelectorAll(".network")) {
    card.setAttribute("aria-checked", String(card.dataset.network === network.id));
  }
  paintInstant();
}

function pickPhoto(file) {
  if (!file) return;
  instant.file = file;
  if (instant.photoUrl) URL.revokeObjectURL(instant.photoUrl);
  instant.photoUrl = URL.createObjectURL(file);
  const photo = $("instant-photo");
  photo.onerror = () => { // not a picture the browser shows: the server says why, beside it
    photo.hidden = true;
    $("instant-photo-hint").hidden = false;
    $("instant-photo-hint").textContent = "This browser cannot show it";
  };
  photo.src = instant.photoUrl;
  photo.hidden = false;
  $("instant-photo-hint").hidden = true;
  $("instant-photo-caption").textContent = file.name;
  paintInstant();
}

function showResult(text, error = false) {
  $("instant-result").hidden = true;
  $("instant-download").hidden = true;
  $("instant-timing").textContent = "";
  const hint = $("instant-result-hint");
  hint.hidden = false;
  hint.textContent = text;
  hint.className = error ? "hint error" : "hint";
}

async function paintInstant() {
  if (!instant.network || !instant.file) {
    showResult(instant.file ? "Pick a style above" : instant.network ? "Now a photo: drop one here or choose one" : "Pick a style and a photo");
    return;
  }
  const asked = ++instant.asked; // a later request wins over one still on its way
  const form = new FormData();
  form.append("file", instant.file);
  form.append("network", instant.network);
  form.append("size", $("instant-size").value);
  sayInstant("Painting …");
  $("instant-drop").classList.add("busy");
  const started = performance.now();
  try {
    const response = await fetch("/api/paint", { method: "POST", body: form });
    if (!response.ok) {
      const body = await response.json().catch(() => null);
      throw new Error(body?.error || `${response.status} ${response.statusText}`);
    }
    const blob = await response.blob();
    if (asked !== instant.asked) return;
    if (instant.resultUrl) URL.revokeObjectURL(instant.resultUrl);
    instant.resultUrl = URL.createObjectURL(blob);
    const result = $("instant-result");
    result.src = instant.resultUrl;
    result.hidden = false;
    $("instant-result-hint").hidden = true;
    const size = (response.headers.get("x-size") || "").replace("x", "×");
    const trip = Math.round(performance.now() - started);
    $("instant-timing").textContent = `${size} px · painted in ${response.headers.get("x-paint-ms")} ms (${trip} ms in all)`;
    const download = $("instant-download");
    download.href = instant.resultUrl;
    download.download = `${instant.file.name.replace(/\.[^.]*$/, "")}_${instant.style || "painted"}.png`;
    download.hidden = false;
    sayInstant("");
  } catch (error) {
    if (asked !== instant.asked) return;
    sayInstant("");
    showResult(error.message, true);
  } finally {
    if (asked === instant.asked) $("instant-drop").classList.remove("busy");
  }
}

function instantDrop() {
  const zone = $("instant-drop");
  const input = $("instant-file");
  input.onchange = () => { pickPhoto(input.files[0]); input.value = ""; };
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => { e.preventDefault(); zone.classList.remove("over"); pickPhoto(e.dataTransfer.files[0]); });
  $("instant-size").onchange = paintInstant;
  $("networks-refresh").onclick = loadNetworks;
}

// -- start -------------------------------------------------------------------------------

async function main() {
  const settings = await api("/api/settings");
  fields = settings.fields;
  if (settings.tensorboard) { $("tensorboard").href = settings.tensorboard; $("tensorboard").hidden = false; }
  drawForm();
  try { fillForm(JSON.parse(localStorage.getItem(SAVED) || "{}")); } catch { /* a form from another version */ }
  checkForm();
  $("viewer-close").onclick = () => $("viewer").close();
  $("pictures-limits").textContent = `Up to ${settings.max_upload_mb} MB and ${settings.max_megapixels} megapixels a picture.`;
  dropZone($("drop-content"), $("file-content"), "content");
  dropZone($("drop-style"), $("file-style"), "style");
  $("start").onclick = start;
  $("stop").onclick = () => watched && stopJob(watched);
  $("refresh").onclick = loadGallery;
  instantDrop();
  loadNetworks();
  loadRecent();
  loadGallery();
  listen();
}

main().catch((error) => say(error.message, true));
