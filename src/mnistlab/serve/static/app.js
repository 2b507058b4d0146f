// The drawing page: strokes on a canvas → PNG → POST /v1/predict (the same preprocessing as
// `mnistlab predict`) → probability bars, the 28×28 image the model saw and a Grad-CAM overlay.
// Plain JavaScript, no library, no network beyond this server.
"use strict";

const pad = document.getElementById("pad");
const ctx = pad.getContext("2d");
const strokes = [];            // each stroke: a list of [x, y] in canvas pixels
let current = null;            // the stroke being drawn
let inFlight = false, again = false, lastSent = 0;
let token = sessionStorage.getItem("mnistlab-token") || "";
let classNames = [...Array(10).keys()].map(String);

function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (token) h["Authorization"] = "Bearer " + token;
  return h;
}

async function api(path, options) {
  let r = await fetch(path, Object.assign({}, options, {headers: headers(options && options.headers)}));
  if (r.status === 401) {
    token = window.prompt("This server needs its API token (MNISTLAB_API_TOKEN):") || "";
    sessionStorage.setItem("mnistlab-token", token);
    r = await fetch(path, Object.assign({}, options, {headers: headers(options && options.headers)}));
  }
  return r;
}

function redraw() {
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, pad.width, pad.height);
  ctx.strokeStyle = "#000";
  ctx.lineWidth = pad.width / 14;
  ctx.lineCap = ctx.lineJoin = "round";
  ctx.fillStyle = "#000";
  for (const s of strokes.concat(current ? [current] : [])) {
    ctx.beginPath();
    if (s.length === 1) {   // a dot
      ctx.arc(s[0][0], s[0][1], ctx.lineWidth / 2, 0, 2 * Math.PI);
      ctx.fill();
      continue;
    }
    ctx.moveTo(s[0][0], s[0][1]);
    for (const [x, y] of s.slice(1)) ctx.lineTo(x, y);
    ctx.stroke();
  }
}

function point(e) {
  const r = pad.getBoundingClientRect();
  return [(e.clientX - r.left) * pad.width / r.width, (e.clientY - r.top) * pad.height / r.height];
}

pad.addEventListener("pointerdown", e => {
  e.preventDefault();
  pad.setPointerCapture(e.pointerId);
  current = [point(e)];
  redraw();
});
pad.addEventListener("pointermove", e => {
  if (!current) return;
  e.preventDefault();
  const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
  for (const ev of events.length ? events : [e]) current.push(point(ev));
  redraw();
  if (performance.now() - lastSent > 120) predict(false);   // live bars while drawing
});
function endStroke(e) {
  if (!current) return;
  strokes.push(current);
  current = null;
  redraw();
  predict(true);
}
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);

document.getElementById("clear").addEventListener("click", () => { strokes.length = 0; redraw(); reset(); });
document.getElementById("undo").addEventListener("click", () => { strokes.pop(); redraw(); strokes.length ? predict(true) : reset(); });

function reset() {
  document.getElementById("answer").textContent = "—";
  document.getElementById("status").textContent = "Draw with the mouse, a finger or a pen.";
  showBars(new Array(classNames.length).fill(0));
  for (const id of ["seen", "cam"]) {
    const c = document.getElementById(id).getContext("2d");
    c.clearRect(0, 0, 28, 28);
  }
}

async function predict(final) {
  if (inFlight) { again = again || final; return; }
  if (!strokes.length && !current) return;
  inFlight = true;
  lastSent = performance.now();
  const explain = final && document.getElementById("explain").checked;
  try {
    const blob = await new Promise(resolve => pad.toBlob(resolve, "image/png"));
    const r = await api(`/v1/predict?include_input=true&explain=${explain}`,
                        {method: "POST", headers: {"Content-Type": "image/png"}, body: blob});
    const body = await r.json();
    if (!r.ok) {
      document.getElementById("status").textContent = body.error || `error ${r.status}`;
    } else {
      show(body);
    }
  } catch (err) {
    document.getElementById("status").textContent = "cannot reach the server: " + err;
  } finally {
    inFlight = false;
    if (again) { again = false; predict(true); }
  }
}

function show(body) {
  document.getElementById("answer").textContent = body.label;
  document.getElementById("status").textContent =
    `${(body.top_k[0].probability * 100).toFixed(1)}% sure · ${body.latency_ms.toFixed(1)} ms` +
    (body.warnings ? " · " + body.warnings.join("; ") : "");
  showBars(body.probabilities);
  const seen = document.getElementById("seen").getContext("2d");
  const img = seen.createImageData(28, 28);
  body.input.flat().forEach((v, i) => { img.data.set([v, v, v, 255], i * 4); });
  seen.putImageData(img, 0, 0);
  if (body.gradcam_png) {
    const cam = new Image();
    cam.onload = () => overlay(img, cam);
    cam.src = "data:image/png;base64," + body.gradcam_png;
    document.getElementById("camcap").textContent = `Grad-CAM for “${body.label}”`;
  }
}

function overlay(digit, cam) {
  // Heat (red, alpha by Grad-CAM) over the digit the model saw.
  const c = document.getElementById("cam").getContext("2d");
  c.putImageData(digit, 0, 0);
  const tmp = document.createElement("canvas");
  tmp.width = tmp.height = 28;
  const t = tmp.getContext("2d");
  t.drawImage(cam, 0, 0, 28, 28);
  const heat = t.getImageData(0, 0, 28, 28);
  const out = c.getImageData(0, 0, 28, 28);
  for (let i = 0; i < out.data.length; i += 4) {
    const a = heat.data[i] / 255 * 0.7;
    out.data[i] = out.data[i] * (1 - a) + 255 * a;
    out.data[i + 1] = out.data[i + 1] * (1 - a) + 60 * a;
    out.data[i + 2] = out.data[i + 2] * (1 - a);
  }
  c.putImageData(out, 0, 0);
}

function showBars(probs) {
  const list = document.getElementById("bars");
  if (list.children.length !== probs.length) {
    list.innerHTML = "";
    probs.forEach((_, k) => {
      const li = document.createElement("li");
      li.innerHTML = '<span class="name"></span><span class="track"><span class="fill"></span></span><span class="pct"></span>';
      li.querySelector(".name").textContent = classNames[k] ?? String(k);
      list.appendChild(li);
    });
  }
  const top = probs.indexOf(Math.max(...probs));
  [...list.children].forEach((li, k) => {
    const pct = probs[k] * 100;
    li.dataset.p = probs[k];
    li.classList.toggle("top", probs[k] > 0 && k === top);
    li.querySelector(".fill").style.width = pct.toFixed(1) + "%";
    li.querySelector(".pct").textContent = pct.toFixed(1) + "%";
  });
}

function showSubject(subject) {
  // "Draw a digit" for MNIST; "Draw an item of clothing" and the classes to choose from otherwise.
  const article = /^[aeiou]/i.test(subject) ? "an" : "a";
  const title = `Draw ${article} ${subject}`;
  document.getElementById("title").textContent = title;
  document.title = `mnistlab — ${title.toLowerCase()}`;
  document.getElementById("pad").setAttribute("aria-label", `drawing area: ${title.toLowerCase()} with mouse, finger or pen`);
  const digits = classNames.every(c => /^\d$/.test(c));
  document.getElementById("classes").textContent = digits ? "" : "one of: " + classNames.join(", ");
}

async function loadModel() {
  try {
    const r = await api("/v1/model");
    const m = await r.json();
    if (r.ok) {
      classNames = m.class_names;
      showSubject(m.subject || "image");
      const acc = m.test_accuracy != null ? `, test accuracy ${(m.test_accuracy * 100).toFixed(2)}%` : "";
      document.getElementById("model").textContent = `${m.name}: ${m.arch} (${m.framework}, ${m.dataset}${acc}), ${m.backend} backend`;
    }
  } catch (err) {
    document.getElementById("model").textContent = "cannot reach the server";
  }
  redraw();
  reset();
}
loadModel();
