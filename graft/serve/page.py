"""The web page at ``GET /``: a drop zone (images, audio clips) or a text box (text), and the
answer drawn in place: bars of classes, entities in the text, boxes or a mask over the image,
a transcript (a speech model's page also records a clip from the microphone). Inline script
and style: nothing is fetched from elsewhere."""

from __future__ import annotations

import html
import json


def render_page(describe: dict) -> str:
    """The web page: a drop zone (images, audio clips) or a text box (text), and the answer
    as bars."""
    noun, accept = {"image": ("an image", "image/*"), "audio": ("an audio clip", "audio/*")}.get(
        describe["modality"], (None, None)
    )
    fields = describe.get("fields") or ["text"]
    boxes = "".join(
        f'<textarea id="{html.escape(name)}" rows="{5 if len(fields) == 1 else 2 + 3 * i}" '
        f'placeholder="{html.escape("Type a text" if name == "text" else "The " + name)}">'
        "</textarea>"
        for i, name in enumerate(fields)
    )
    control = (
        f'<label id="drop" class="drop">Drop {noun} here, or '
        f'<input id="file" type="file" accept="{accept}"></label>'
        if noun
        else f'{boxes}<button id="send">Predict</button>'
    )
    if noun and describe.get("clip_seconds"):  # a speech model: a clip of its window at most
        control += _RECORD.replace("{{SECONDS}}", f"{float(describe['clip_seconds']):g}")
    model = json.dumps(describe).replace("<", "\\u003c")  # no "</script>" from a label
    title = html.escape(f"graft: {describe['model']} ({describe['task']})")
    return (
        _PAGE.replace("{{FETCH_WITH_TOKEN}}", FETCH_WITH_TOKEN)
        .replace("{{CONTROL}}", control)
        .replace("{{MODEL}}", model)
        .replace("{{TITLE}}", title)
    )


#: A speech model's page also records from the microphone (a WAV encoded in the page: the
#: server's decoder, libsndfile, reads WAV, FLAC and OGG but not the WebM that Chrome's
#: MediaRecorder writes). Browsers give the microphone to https pages and localhost only.
_RECORD = (
    '<p><button id="record" type="button">Record</button> '
    '<span id="recording">or record a clip of at most {{SECONDS}} s</span></p>'
)

#: The pages' fetch: an exposed service needs its token, asked once and kept for the tab
#: (sessionStorage); a refused token is forgotten.
FETCH_WITH_TOKEN = """async function fetchWithToken(path, request) {
  const send = () => {
    const token = sessionStorage.getItem("graft-token");
    const headers = Object.assign({}, request.headers || {});
    if (token) headers["Authorization"] = "Bearer " + token;
    return fetch(path, Object.assign({}, request, { headers }));
  };
  let response = await send();
  if (response.status === 401) {
    const token = window.prompt("This service needs its token (graft serve named its file):");
    if (token) { sessionStorage.setItem("graft-token", token.trim()); response = await send(); }
  }
  if (response.status === 401) sessionStorage.removeItem("graft-token");
  return response;
}"""

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{TITLE}}</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 44rem; margin: 2rem auto; color: #222; }
.drop { display: block; border: 2px dashed #888; padding: 2rem; text-align: center; }
.drop.over { background: #eef; }
textarea { width: 100%; font: inherit; }
#preview { max-width: 12rem; display: block; margin: 1rem 0; }
.bar { display: flex; align-items: center; gap: 0.5rem; margin: 0.3rem 0; }
.bar .label { width: 10rem; overflow: hidden; text-overflow: ellipsis; }
.bar .track { flex: 1; background: #eee; height: 1.1rem; }
.bar .fill { background: #3a7bd5; height: 100%; }
.bar .value { width: 4.5rem; text-align: right; font-variant-numeric: tabular-nums; }
#error { color: #b00; }
.swatch { display: inline-block; width: 0.9rem; height: 0.9rem; margin: 0 0.3rem 0 0.8rem;
  vertical-align: middle; border: 1px solid #888; }
.tagged { line-height: 2.2; white-space: pre-wrap; }
.tagged mark { background: #dbe7fb; border-radius: 0.2rem; padding: 0.1rem 0.2rem; }
.tagged sup { font-size: 0.65rem; font-weight: bold; color: #3a7bd5; margin-left: 0.2rem; }
</style></head><body>
<h1>{{TITLE}}</h1>
{{CONTROL}}
<img id="preview" alt="" hidden>
<audio id="listen" controls hidden></audio>
<div id="error" role="alert"></div>
<div id="result" aria-live="polite"></div>
<script>
const MODEL = {{MODEL}};
const result = document.getElementById("result"), error = document.getElementById("error");
function showEntities(answer) {
  // entities as spans of the text, highlighted in place (offsets count code points)
  const chars = Array.from(answer.text), line = document.createElement("p");
  line.className = "tagged";
  let at = 0;
  for (const entity of answer.entities) {
    line.append(chars.slice(at, entity.start).join(""));
    const mark = document.createElement("mark"), tag = document.createElement("sup");
    mark.title = entity.label + " " + (100 * entity.score).toFixed(1) + "%";
    mark.textContent = chars.slice(entity.start, entity.end).join("");
    tag.textContent = entity.label; mark.append(tag); line.append(mark); at = entity.end;
  }
  line.append(chars.slice(at).join(""));
  if (!answer.entities.length) line.append(" (no entity found)");
  result.append(line);
}
function showBoxes(answer) {
  // a detector's boxes drawn over the dropped image (pixels of the image as it was sent)
  const preview = document.getElementById("preview"), canvas = document.createElement("canvas");
  canvas.id = "boxes";
  const draw = () => {
    const scale = Math.min(1, 640 / preview.naturalWidth), pen = canvas.getContext("2d");
    canvas.width = preview.naturalWidth * scale; canvas.height = preview.naturalHeight * scale;
    pen.drawImage(preview, 0, 0, canvas.width, canvas.height);
    pen.lineWidth = 2; pen.font = "13px system-ui, sans-serif";
    for (const found of answer.detections) {
      const [x1, y1, x2, y2] = found.box.map((v) => v * scale);
      const text = found.label + " " + (100 * found.score).toFixed(0) + "%";
      const top = Math.max(0, y1 - 16);
      pen.strokeStyle = pen.fillStyle = "#dc1e1e"; pen.strokeRect(x1, y1, x2 - x1, y2 - y1);
      pen.fillRect(x1, top, pen.measureText(text).width + 6, 16);
      pen.fillStyle = "#fff"; pen.fillText(text, x1 + 3, top + 12);
    }
  };
  if (preview.complete && preview.naturalWidth) draw();
  else preview.addEventListener("load", draw, { once: true });
  const note = document.createElement("p");
  note.textContent = answer.detections.length + " object(s) found";
  result.append(canvas, note);
}
function showMask(answer) {
  // a segmentation's mask (a PNG, background transparent) laid over the dropped image
  const preview = document.getElementById("preview"), canvas = document.createElement("canvas");
  const mask = new Image();
  canvas.id = "mask";
  let waiting = 2;
  const ready = () => {
    if (--waiting > 0) return;
    const scale = Math.min(1, 640 / preview.naturalWidth), pen = canvas.getContext("2d");
    canvas.width = preview.naturalWidth * scale; canvas.height = preview.naturalHeight * scale;
    pen.drawImage(preview, 0, 0, canvas.width, canvas.height);
    pen.globalAlpha = 0.5; pen.imageSmoothingEnabled = false;
    pen.drawImage(mask, 0, 0, canvas.width, canvas.height);
  };
  mask.addEventListener("load", ready, { once: true }); mask.src = answer.mask;
  if (preview.complete && preview.naturalWidth) ready();
  else preview.addEventListener("load", ready, { once: true });
  const legend = document.createElement("p");
  for (const [name, share] of Object.entries(answer.pixels)) {
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = answer.colors[answer.classes.indexOf(name)];
    legend.append(swatch, name + " " + (100 * share).toFixed(1) + "%");
  }
  result.append(canvas, legend);
}
function showSpan(answer) {
  // an answer found in the posted passage, with its score
  const line = document.createElement("p"), mark = document.createElement("mark");
  mark.textContent = answer.answer || "(no answer)";
  const where = " [" + answer.start + ":" + answer.end + "]";
  line.append(mark, " score " + answer.score.toFixed(2) + where);
  result.append(line);
}
function showTranscript(answer) {
  // a speech model's transcript of the clip, and the seconds the model took
  const line = document.createElement("p"), took = document.createElement("small");
  line.id = "transcript"; line.textContent = answer.text || "(silence: no speech)";
  took.textContent = "transcribed in " + answer.seconds.toFixed(2) + " s";
  result.append(line, took);
}
function encodeWav(chunks, rate, most) {
  // the recorded samples (Float32 chunks) as a 16-bit mono WAV file, at most `most` samples
  const length = Math.min(most, chunks.reduce((n, chunk) => n + chunk.length, 0));
  const view = new DataView(new ArrayBuffer(44 + 2 * length));
  const text = (at, word) => {
    for (let i = 0; i < 4; i++) view.setUint8(at + i, word.charCodeAt(i));
  };
  text(0, "RIFF"); view.setUint32(4, 36 + 2 * length, true); text(8, "WAVE"); text(12, "fmt ");
  view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, rate, true); view.setUint32(28, 2 * rate, true);
  view.setUint16(32, 2, true); view.setUint16(34, 16, true);
  text(36, "data"); view.setUint32(40, 2 * length, true);
  let at = 0;
  for (const chunk of chunks) {
    for (const value of chunk) {
      if (at === length) break;
      view.setInt16(44 + 2 * at++, Math.max(-1, Math.min(1, value)) * 0x7fff, true);
    }
  }
  return new File([view], "recording.wav", { type: "audio/wav" });
}
function recorder(button, note, send) {
  // the microphone through an AudioContext, its samples kept until Stop (or the model's
  // window), then sent as a WAV file
  let taking = null;
  const hint = note.textContent;
  const stop = () => {
    const took = taking; taking = null; clearTimeout(took.timer);
    took.source.disconnect(); took.node.disconnect();
    took.stream.getTracks().forEach((track) => track.stop());
    const rate = took.context.sampleRate;
    took.context.close(); button.textContent = "Record"; note.textContent = hint;
    send(encodeWav(took.chunks, rate, Math.floor(MODEL.clip_seconds * rate)));
  };
  button.addEventListener("click", async () => {
    if (taking) { stop(); return; }
    let stream;
    try { stream = await navigator.mediaDevices.getUserMedia({ audio: true }); }
    catch (problem) {
      error.textContent = "no microphone (" + problem.message + "): a browser lends it to "
        + "https pages and localhost only"; return;
    }
    const context = new AudioContext(), source = context.createMediaStreamSource(stream);
    const node = context.createScriptProcessor(4096, 1, 1), chunks = [];
    node.onaudioprocess = (e) => chunks.push(new Float32Array(e.inputBuffer.getChannelData(0)));
    source.connect(node); node.connect(context.destination);
    const timer = setTimeout(stop, MODEL.clip_seconds * 1000);
    taking = { stream, context, source, node, chunks, timer };
    button.textContent = "Stop"; note.textContent = "recording… (at most "
      + MODEL.clip_seconds + " s)";
  });
}
function show(answer) {
  result.replaceChildren();
  if (!Array.isArray(answer) && "answer" in answer) { showSpan(answer); return; }
  if (!Array.isArray(answer) && "entities" in answer) { showEntities(answer); return; }
  if (!Array.isArray(answer) && "seconds" in answer) { showTranscript(answer); return; }
  if (!Array.isArray(answer) && "detections" in answer) { showBoxes(answer); return; }
  if (!Array.isArray(answer) && "mask" in answer) { showMask(answer); return; }
  for (const row of answer) {
    const bar = document.createElement("div"); bar.className = "bar";
    const label = document.createElement("span"); label.className = "label";
    const track = document.createElement("span"); track.className = "track";
    const fill = document.createElement("span"); fill.className = "fill";
    const value = document.createElement("span"); value.className = "value";
    if ("value" in row) { label.textContent = "value"; value.textContent = row.value.toFixed(4); }
    else {
      label.textContent = row.label; fill.style.width = (100 * row.probability) + "%";
      value.textContent = (100 * row.probability).toFixed(1) + "%";
    }
    if (row.predicted === false) bar.style.opacity = 0.5;  // multi-label: below threshold
    fill.style.display = "block"; track.append(fill); bar.append(label, track, value);
    result.append(bar);
  }
}
{{FETCH_WITH_TOKEN}}
async function ask(request) {
  error.textContent = ""; result.textContent = "…";
  const response = await fetchWithToken("predict?top_k=5", request);
  const body = await response.json();
  if (!response.ok) {
    result.textContent = ""; error.textContent = body.error || body.detail; return;
  }
  show(body.predictions[0]);
}
if (MODEL.modality === "image" || MODEL.modality === "audio") {
  const drop = document.getElementById("drop"), input = document.getElementById("file");
  const send = (file) => {
    const preview = document.getElementById(MODEL.modality === "image" ? "preview" : "listen");
    preview.src = URL.createObjectURL(file); preview.hidden = false;
    const form = new FormData(); form.append("file", file);
    ask({ method: "POST", body: form });
  };
  input.addEventListener("change", () => input.files[0] && send(input.files[0]));
  const record = document.getElementById("record");
  if (record) recorder(record, document.getElementById("recording"), send);
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault(); drop.classList.remove("over");
    if (e.dataTransfer.files[0]) send(e.dataTransfer.files[0]);
  });
} else {
  const fields = MODEL.fields || ["text"], payload = { top_k: 5 };
  document.getElementById("send").addEventListener("click", () => {
    for (const name of fields) payload[name] = document.getElementById(name).value;
    ask({ method: "POST", headers: { "Content-Type": "application/json" },
          body: JSON.stringify(payload) });
  });
}
</script></body></html>
"""
