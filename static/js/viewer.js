/* Docent's PDF viewer (templates/documents/viewer.html): the original file at the cited page,
 * the quoted passage marked on it. An ES module; no inline script anywhere (CSP).
 *
 * The page's JSON (#viewer-data) gives the file's URL, PDF.js's files (installed by `make
 * install` under /static/pdfjs/) and the marks: {number, document, title, quote, start, end,
 * page, label, boxes, here, href, text_href, failed_href}, one per citation of the run (or the
 * one passage asked for), and which one is current. A mark in this document is shown in place;
 * one elsewhere is opened at its href.
 *
 * Pages are placeholders sized from the first page until they come near the screen
 * (IntersectionObserver): then the page is drawn on a canvas with PDF.js's text layer over it,
 * and drawn pages far from the screen are let go, so a 500-page PDF opens as fast as a short
 * one. The quote is found in the page's text with letters and digits only, case folded, so
 * the extraction's whitespace and hyphenation differences do not matter; the text-layer spans
 * that cover it get the class "highlight". A scanned page has no text: the OCR word boxes the
 * server gives are drawn over it instead.
 *
 * PDF.js runs with isEvalSupported: false, without WebAssembly (the CSP allows neither) and
 * without its scripting sandbox or annotation layer: a PDF's JavaScript never runs. When the
 * file cannot be opened or its cited page drawn, the page goes to the text view of the same
 * passage, which says why.
 */

const root = document.getElementById("viewer");
const data = JSON.parse(document.getElementById("viewer-data").textContent);
const pagesEl = document.getElementById("viewer-pages");
const toolbar = root.querySelector(".viewer-toolbar");
const field = (name) => root.querySelector(`[data-field="${name}"]`);
const control = (name) => root.querySelector(`[data-action="${name}"]`);
const pageInput = document.getElementById("viewer-page");

const ZOOMS = [0.5, 0.67, 0.8, 1, 1.25, 1.5, 2, 3];
const FIT_MAX = 1.5; // "100%": the page as wide as the column, but never more than 1.5x its size
const MAX_CANVAS_PIXELS = 16 * 1024 * 1024;
const SEARCH_PAGES_MAX = 200; // pages searched for a quote whose page is not known
const MIN_MATCH = 16; // letters and digits a partial match (a quote across pages) needs

const marks = data.marks;
let current = data.current;
let pdfjs = null;
let pdf = null;
let zoomIndex = ZOOMS.indexOf(1);
let fitScale = 1;
let slots = [];
let nearObserver = null;
let centreObserver = null;
let currentPage = 1;
let failing = false;

function fail() {
  if (failing) { return; }
  failing = true;
  const mark = marks[current];
  window.location.replace(mark && mark.here ? mark.failed_href : data.failed);
}

function say(text) {
  const status = field("status");
  status.textContent = text;
  status.hidden = !text;
}

// --- matching the quote against a page's text ---------------------------------------------

const WORD_CHAR = /[\p{L}\p{N}]/u;

// The letters and digits of the strings, lower-cased and without accents, with where each
// came from: [string index, character index].
function fold(strings) {
  let text = "";
  const from = [];
  strings.forEach((value, item) => {
    for (let at = 0; at < value.length; at += 1) {
      const folded = value[at].normalize("NFKD").toLowerCase();
      for (const ch of folded) {
        if (WORD_CHAR.test(ch)) {
          text += ch;
          from.push([item, at]);
        }
      }
    }
  });
  return { text, from };
}

// The longest piece of the quote found on the page: the whole quote, else its longest
// beginning (a quote running onto the next page) or end (one begun on the page before).
function findQuote(pageText, quote) {
  if (!quote) { return null; }
  const whole = pageText.indexOf(quote);
  if (whole >= 0) { return { at: whole, length: quote.length }; }
  const need = Math.min(MIN_MATCH, quote.length);
  const longest = (piece) => {
    let low = 0;
    let high = quote.length;
    while (low < high) { // found(n) holds for every n up to the longest piece found
      const middle = Math.ceil((low + high) / 2);
      if (pageText.includes(piece(middle))) { low = middle; } else { high = middle - 1; }
    }
    return low;
  };
  const head = longest((n) => quote.slice(0, n));
  const tail = longest((n) => quote.slice(quote.length - n));
  if (Math.max(head, tail) < need) { return null; }
  if (head >= tail) { return { at: pageText.indexOf(quote.slice(0, head)), length: head }; }
  return { at: pageText.indexOf(quote.slice(quote.length - tail)), length: tail };
}

function markSpan(div, from, to) {
  const value = div.textContent;
  if (from <= 0 && to >= value.length) {
    div.classList.add("highlight");
    return;
  }
  const inner = document.createElement("span");
  inner.className = "highlight appended";
  inner.textContent = value.slice(from, to);
  div.replaceChildren(value.slice(0, from), inner, value.slice(to));
}

function highlightText(slot, quote) {
  if (!slot.textDivs || !slot.textDivs.length) { return null; }
  const page = fold(slot.texts);
  const wanted = fold([quote]).text;
  const found = findQuote(page.text, wanted);
  if (!found) { return null; }
  const ranges = new Map(); // text div index -> [from, to)
  for (let i = found.at; i < found.at + found.length; i += 1) {
    const [item, at] = page.from[i];
    const range = ranges.get(item);
    if (range) { range[1] = at + 1; } else { ranges.set(item, [at, at + 1]); }
  }
  let first = null;
  for (const [item, [from, to]] of ranges) {
    const div = slot.textDivs[item];
    markSpan(div, from, to);
    first = first || div;
  }
  return first;
}

function drawBoxes(slot, boxes) {
  const layer = document.createElement("div");
  layer.className = "viewer-ocr-marks";
  layer.setAttribute("aria-hidden", "true");
  for (const [x0, y0, x1, y1] of boxes) {
    const box = document.createElement("div");
    box.className = "viewer-ocr-mark highlight";
    box.style.left = `${(x0 * 100).toFixed(3)}%`;
    box.style.top = `${(y0 * 100).toFixed(3)}%`;
    box.style.width = `${((x1 - x0) * 100).toFixed(3)}%`;
    box.style.height = `${((y1 - y0) * 100).toFixed(3)}%`;
    layer.append(box);
  }
  slot.el.append(layer);
  return layer.firstElementChild;
}

// Marks the current quote on a drawn page; returns the first marked element, if any.
function markPage(slot) {
  const mark = marks[current];
  if (!mark || !mark.here || !slot.drawn) { return null; }
  const onPage = mark.page === slot.number || (mark.page_end && mark.page <= slot.number && slot.number <= mark.page_end);
  if (!onPage && mark.page !== null) { return null; }
  const text = highlightText(slot, mark.quote);
  if (text) { return text; }
  if (mark.boxes && mark.boxes.length && mark.page === slot.number) { return drawBoxes(slot, mark.boxes); }
  return null;
}

function clearMarks() {
  for (const slot of slots) {
    slot.el.querySelectorAll(".viewer-ocr-marks").forEach((layer) => layer.remove());
    if (!slot.textDivs) { continue; }
    slot.textDivs.forEach((div, item) => {
      if (div.classList.contains("highlight") || div.querySelector(".highlight")) {
        div.classList.remove("highlight");
        div.textContent = slot.texts[item];
      }
    });
  }
}

// --- pages: placeholders, drawing on demand, letting go ------------------------------------

function scale() { return fitScale * ZOOMS[zoomIndex]; }

function sizeSlot(slot) {
  const s = scale();
  slot.el.style.width = `${Math.floor(slot.size.width * s)}px`;
  slot.el.style.height = `${Math.floor(slot.size.height * s)}px`;
}

function release(slot) {
  slot.generation += 1;
  if (slot.task) { slot.task.cancel(); slot.task = null; }
  if (slot.textLayer) { slot.textLayer.cancel(); slot.textLayer = null; }
  slot.el.replaceChildren();
  slot.drawn = false;
  slot.drawing = null;
  slot.textDivs = null;
  slot.texts = null;
}

async function draw(slot) {
  if (slot.drawn) { return; }
  if (slot.drawing) { return slot.drawing; }
  const generation = slot.generation;
  slot.drawing = (async () => {
    const page = await pdf.getPage(slot.number);
    if (generation !== slot.generation) { return; }
    const unscaled = page.getViewport({ scale: 1 });
    if (unscaled.width !== slot.size.width || unscaled.height !== slot.size.height) {
      slot.size = { width: unscaled.width, height: unscaled.height };
      sizeSlot(slot);
    }
    const viewport = page.getViewport({ scale: scale() });
    const wanted = window.devicePixelRatio || 1;
    const ratio = Math.min(wanted, Math.sqrt(MAX_CANVAS_PIXELS / (viewport.width * viewport.height)));
    const canvas = document.createElement("canvas");
    canvas.width = Math.floor(viewport.width * ratio);
    canvas.height = Math.floor(viewport.height * ratio);
    canvas.style.width = `${Math.floor(viewport.width)}px`;
    canvas.style.height = `${Math.floor(viewport.height)}px`;
    canvas.setAttribute("aria-hidden", "true");
    const layer = document.createElement("div");
    layer.className = "textLayer";
    slot.el.style.setProperty("--total-scale-factor", String(viewport.scale));
    slot.el.replaceChildren(canvas, layer);
    slot.task = page.render({
      canvas,
      canvasContext: canvas.getContext("2d"),
      viewport,
      transform: ratio !== 1 ? [ratio, 0, 0, ratio, 0, 0] : null,
    });
    await slot.task.promise;
    slot.task = null;
    if (generation !== slot.generation) { return; }
    const textLayer = new pdfjs.TextLayer({
      textContentSource: page.streamTextContent(),
      container: layer,
      viewport,
    });
    slot.textLayer = textLayer;
    await textLayer.render();
    slot.textLayer = null;
    if (generation !== slot.generation) { return; }
    slot.textDivs = textLayer.textDivs;
    slot.texts = textLayer.textContentItemsStr;
    slot.drawn = true;
    slot.el.classList.add("drawn");
    markPage(slot);
  })().catch((error) => {
    if (error && error.name === "RenderingCancelledException") { return; }
    if (error && error.name === "AbortException") { return; }
    slot.el.classList.add("failed");
    slot.el.replaceChildren(Object.assign(document.createElement("p"), {
      className: "viewer-page-error",
      textContent: `Page ${slot.number} could not be shown.`,
    }));
    throw error;
  }).finally(() => { slot.drawing = null; });
  return slot.drawing;
}

function observe() {
  nearObserver = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      const slot = slots[Number(entry.target.dataset.page) - 1];
      if (entry.isIntersecting) {
        draw(slot).catch(() => {});
      } else if (slot.drawn || slot.drawing) {
        release(slot);
      }
    }
  }, { rootMargin: "150% 0px" });
  // The page across the middle of the screen is the current one.
  centreObserver = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      if (entry.isIntersecting) { setCurrentPage(Number(entry.target.dataset.page)); }
    }
  }, { rootMargin: "-50% 0px -50% 0px" });
  for (const slot of slots) {
    nearObserver.observe(slot.el);
    centreObserver.observe(slot.el);
  }
}

function setCurrentPage(number) {
  currentPage = number;
  if (document.activeElement !== pageInput) { pageInput.value = String(number); }
  control("page-prev").disabled = number <= 1;
  control("page-next").disabled = number >= slots.length;
}

function scrollToPage(number, target) {
  const slot = slots[Math.min(Math.max(number, 1), slots.length) - 1];
  const offset = toolbar.getBoundingClientRect().height + 8;
  const element = target || slot.el;
  const top = element.getBoundingClientRect().top + window.scrollY - offset;
  const centred = target ? top - (window.innerHeight - offset) / 3 : top;
  window.scrollTo({ top: Math.max(0, centred), behavior: "instant" });
  setCurrentPage(slot.number);
}

// --- the current citation -------------------------------------------------------------------

// Finds the page of a quote whose page the server does not know (a document indexed before
// pages were recorded): the first page whose text holds its beginning.
async function searchPage(quote) {
  const wanted = fold([quote]).text.slice(0, 60);
  if (!wanted) { return null; }
  for (let number = 1; number <= Math.min(pdf.numPages, SEARCH_PAGES_MAX); number += 1) {
    const page = await pdf.getPage(number);
    const content = await page.getTextContent();
    if (fold(content.items.map((item) => item.str || "")).text.includes(wanted)) { return number; }
  }
  return null;
}

async function showMark() {
  const mark = marks[current];
  clearMarks();
  if (!mark) { scrollToPage(1); return; }
  if (!mark.page) { mark.page = await searchPage(mark.quote); }
  const number = Math.min(mark.page || 1, slots.length);
  scrollToPage(number);
  const slot = slots[number - 1];
  try {
    await draw(slot);
  } catch {
    fail(); // the cited page itself cannot be drawn
    return;
  }
  const marked = slot.el.querySelector(".highlight") || markPage(slot);
  // Later pages of a passage across pages, once drawn, are marked as they appear.
  if (mark.page_end) { slots.slice(number, mark.page_end).forEach((later) => markPage(later)); }
  scrollToPage(number, marked);
  root.dataset.state = "ready";
}

function updateCitation() {
  const mark = marks[current];
  if (!mark) { return; }
  field("cite-number").textContent = mark.number ? `Citation ${mark.number}` : "Passage";
  field("cite-label").textContent = mark.label || "";
  field("cite-quote").textContent = mark.quote;
  field("text-link").href = mark.text_href;
  const count = field("cite-count");
  if (count) { count.textContent = `${current + 1} of ${marks.length}`; }
  for (const [name, index] of [["cite-prev", current - 1], ["cite-next", current + 1]]) {
    const link = control(name);
    if (!link) { continue; }
    const other = marks[index];
    if (other) {
      link.href = other.href;
      link.removeAttribute("aria-disabled");
    } else {
      link.removeAttribute("href");
      link.setAttribute("aria-disabled", "true");
    }
  }
  document.title = `${root.dataset.title}${mark.label ? ` (${mark.label})` : ""} · Docent`;
}

function goToCitation(index, event) {
  const mark = marks[index];
  if (!mark) { event.preventDefault(); return; }
  if (!mark.here) { return; } // another document: follow the link
  event.preventDefault();
  current = index;
  window.history.replaceState(null, "", mark.href);
  updateCitation();
  showMark();
}

// --- zoom -----------------------------------------------------------------------------------

function setZoom(index) {
  if (index < 0 || index >= ZOOMS.length || index === zoomIndex) { return; }
  const keep = currentPage;
  const slot = slots[keep - 1];
  const offset = toolbar.getBoundingClientRect().height + 8;
  const fraction = (offset - slot.el.getBoundingClientRect().top) / slot.el.getBoundingClientRect().height;
  zoomIndex = index;
  for (const each of slots) {
    release(each);
    sizeSlot(each);
  }
  field("zoom").textContent = `${Math.round(ZOOMS[zoomIndex] * 100)}%`;
  control("zoom-out").disabled = zoomIndex === 0;
  control("zoom-in").disabled = zoomIndex === ZOOMS.length - 1;
  const top = slot.el.getBoundingClientRect().top + window.scrollY - offset;
  window.scrollTo({ top: top + Math.max(0, fraction) * slot.el.getBoundingClientRect().height, behavior: "instant" });
  // Pages near the screen are drawn again by the observer; the quote is marked as they are.
  nearObserver.disconnect();
  for (const each of slots) { nearObserver.observe(each.el); }
}

// --- start ----------------------------------------------------------------------------------

function wire() {
  control("zoom-in").addEventListener("click", () => setZoom(zoomIndex + 1));
  control("zoom-out").addEventListener("click", () => setZoom(zoomIndex - 1));
  control("page-prev").addEventListener("click", () => scrollToPage(currentPage - 1));
  control("page-next").addEventListener("click", () => scrollToPage(currentPage + 1));
  pageInput.addEventListener("change", () => {
    const number = Number.parseInt(pageInput.value, 10);
    if (Number.isInteger(number)) { scrollToPage(number); } else { pageInput.value = String(currentPage); }
  });
  pageInput.addEventListener("keydown", (event) => {
    if (event.key === "Enter") { pageInput.dispatchEvent(new Event("change")); }
  });
  const previous = control("cite-prev");
  const next = control("cite-next");
  if (previous) { previous.addEventListener("click", (event) => goToCitation(current - 1, event)); }
  if (next) { next.addEventListener("click", (event) => goToCitation(current + 1, event)); }
  for (const button of [control("zoom-in"), control("zoom-out"), control("page-prev"), control("page-next")]) {
    button.disabled = false;
  }
  pageInput.disabled = false;
  pageInput.max = String(slots.length);
  control("zoom-out").disabled = zoomIndex === 0;
}

async function open() {
  const assets = data.pdfjs;
  try {
    pdfjs = await import(assets.module);
    pdfjs.GlobalWorkerOptions.workerSrc = assets.worker;
    pdf = await pdfjs.getDocument({
      url: data.file,
      isEvalSupported: false, // fonts are drawn without compiled glyph functions (CSP: no eval)
      useWasm: false, // and images decoded without WebAssembly (CSP: no wasm-unsafe-eval)
      enableXfa: false,
      cMapUrl: assets.cmaps,
      cMapPacked: true,
      standardFontDataUrl: assets.fonts,
      wasmUrl: assets.wasm,
      iccUrl: assets.iccs,
      disableRange: true, // the file route sends the whole file
    }).promise;
  } catch {
    fail();
    return;
  }
  const first = await pdf.getPage(1).catch(() => null);
  if (!first) { fail(); return; }
  const size = first.getViewport({ scale: 1 });
  const column = pagesEl.clientWidth - 2; // the page's border
  fitScale = Math.min(FIT_MAX, column / size.width);
  slots = [];
  const fragment = document.createDocumentFragment();
  for (let number = 1; number <= pdf.numPages; number += 1) {
    const el = document.createElement("div");
    el.className = "viewer-page";
    el.dataset.page = String(number);
    el.setAttribute("role", "group");
    el.setAttribute("aria-label", `Page ${number}`);
    const slot = { number, el, size: { width: size.width, height: size.height }, generation: 0 };
    sizeSlot(slot);
    slots.push(slot);
    fragment.append(el);
  }
  pagesEl.replaceChildren(fragment);
  field("page-count").textContent = String(pdf.numPages);
  say("");
  wire();
  updateCitation();
  await showMark();
  observe();
}

root.dataset.title = document.querySelector("h1").textContent.trim();
open().catch(() => fail());
