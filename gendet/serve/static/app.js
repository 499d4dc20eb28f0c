// gendet web page: upload one image to POST /v1/detect and show the verdict, gauge, heat map and evidence.
// Plain JS, no external code. Server text is only ever set through textContent (file names are echoed back).
"use strict";

const $ = (id) => document.getElementById(id);
const KEY_STORE = "gendet-api-key";

function apiHeaders() {
  const key = $("apikey").value || sessionStorage.getItem(KEY_STORE) || "";
  return key ? { "X-API-Key": key } : {};
}

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

function fmt(p) {
  if (p === null || p === undefined) return "n/a";
  if (p >= 0.05 && p <= 0.95) return p.toFixed(2);
  return p < 0.05 ? p.toPrecision(3) : p.toFixed(4);
}

// Piecewise-linear scale with the threshold at the centre: [0, thr] -> [0, 50%], [thr, 1] -> [50%, 100%].
function gaugePosition(score, thr) {
  if (thr <= 0) return 50 + 50 * score;
  if (thr >= 1) return 50 * score;
  return score < thr ? 50 * (score / thr) : 50 + 50 * ((score - thr) / (1 - thr));
}

async function loadModelInfo() {
  try {
    const res = await fetch("/v1/model", { headers: apiHeaders() });
    if (res.status === 401) {
      $("keyrow").hidden = false;
      $("modelinfo").textContent = "this server needs an API key";
      return;
    }
    const card = await res.json();
    const version = card.version ? `, ${card.version}` : "";
    $("modelinfo").textContent = `model ${card.name} (${card.model}${version}), threshold ${fmt(card.threshold)}`;
  } catch (err) {
    $("modelinfo").textContent = `model information unavailable (${err})`;
  }
}

function showExplanation(ex) {
  $("inputfig").hidden = false;
  $("modelinput").src = `data:image/png;base64,${ex.input_png}`;
  $("heatmap").src = `data:image/png;base64,${ex.heatmap_png}`;
  $("heatmap").hidden = !$("heatmap-toggle").checked;
  $("inputsize").textContent = `${ex.input_size[1]}x${ex.input_size[0]} px, ${ex.relevance_source} relevance`;
  $("evidence-box").hidden = false;
  $("evidence").textContent = ex.model_text ? `${ex.text} Model: ${ex.model_text}` : ex.text;
  const list = $("regions");
  list.replaceChildren();
  for (const r of ex.top_regions) {
    const li = document.createElement("li");
    const dir = r.occlusion_delta >= 0 ? "raises" : "lowers";
    li.textContent = `${r.name}: ${dir} the score by ${fmt(Math.abs(r.occlusion_delta))}, ` +
      `${(100 * r.relevance_share).toFixed(0)}% of the heat map`;
    list.appendChild(li);
  }
}

const VERDICT_TEXT = {
  generated: "Likely generated (fake)", edited: "Edited (the file says so)", real: "Likely real",
};

function showProvenance(r) {
  const box = $("provenance-box");
  const findings = r.provenance || [];
  box.hidden = r.provenance === null || r.provenance === undefined;
  $("prov-reason").textContent = findings.length ? `verdict: ${r.verdict} (${r.reason})` :
    "no provenance in this file: the verdict is the pixel detector's";
  $("prov-conflict").hidden = !r.conflict;
  $("prov-conflict").textContent = r.conflict ? `conflict: ${r.conflict}` : "";
  const list = $("provenance");
  list.replaceChildren();
  for (const f of findings) {
    const li = document.createElement("li");
    li.textContent = `${f.signal}: says ${f.says} (${f.strength}): ${f.detail}` + (f.error ? ` [error: ${f.error}]` : "");
    li.className = f.error ? "finding error" : `finding ${f.says}`;
    list.appendChild(li);
  }
}

function showResult(r) {
  const fake = r.label === "fake";
  const verdict = $("verdict");
  const word = r.verdict || (fake ? "generated" : "real");
  verdict.textContent = VERDICT_TEXT[word] || word;
  verdict.className = `verdict ${word === "real" ? "real" : "fake"}`;
  $("score").textContent = `score ${fmt(r.score)} = P(generated); ${fake ? "at or above" : "below"} the ` +
    `threshold ${fmt(r.threshold)} · model ${r.model}`;
  $("gauge-thr").textContent = `threshold ${fmt(r.threshold)}`;
  const fill = $("gauge-fill");
  fill.style.width = `${gaugePosition(r.score, r.threshold).toFixed(1)}%`;
  fill.classList.toggle("fake", fake);
  $("inputfig").hidden = true;
  $("evidence-box").hidden = true;
  showProvenance(r);
  if (r.explanation) showExplanation(r.explanation);
  else if (r.explanation_error) setStatus(`no explanation: ${r.explanation_error}`, true);
}

async function check(file) {
  if (!file) return;
  $("result").hidden = false;
  $("preview").src = URL.createObjectURL(file);
  $("verdict").textContent = "";
  $("verdict").className = "verdict";
  $("score").textContent = "";
  $("gauge-fill").style.width = "0";
  $("inputfig").hidden = true;
  $("evidence-box").hidden = true;
  setStatus(`checking ${file.name}...`);
  const body = new FormData();
  body.append("file", file, file.name);
  const explain = $("explain").checked ? "true" : "false";
  let res, data;
  try {
    res = await fetch(`/v1/detect?explain=${explain}`, { method: "POST", body, headers: apiHeaders() });
    data = await res.json();
  } catch (err) {
    setStatus(`request failed: ${err}`, true);
    return;
  }
  if (res.status === 401) $("keyrow").hidden = false;
  const r = data.results && data.results[0];
  if (!res.ok || !r || r.error) {
    setStatus(`${res.status}: ${(r && r.error) || data.detail || res.statusText}`, true);
    return;
  }
  setStatus(`${file.name}: done`);
  showResult(r);
}

function init() {
  const drop = $("drop");
  $("file").addEventListener("change", (e) => check(e.target.files[0]));
  $("heatmap-toggle").addEventListener("change", (e) => { $("heatmap").hidden = !e.target.checked; });
  $("apikey").addEventListener("change", (e) => {
    sessionStorage.setItem(KEY_STORE, e.target.value);
    loadModelInfo();
  });
  for (const ev of ["dragenter", "dragover"]) {
    drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  for (const ev of ["dragleave", "drop"]) {
    drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.remove("over"); });
  }
  drop.addEventListener("drop", (e) => check(e.dataTransfer.files[0]));
  loadModelInfo();
}

init();
