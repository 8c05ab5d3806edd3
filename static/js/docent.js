/* Docent page behaviour. Loaded with `defer`; no inline scripts anywhere (CSP).
 *
 * Live updates: an element with data-poll-url polls that JSON endpoint until
 * every item it contains has finished. Items are descendants marked
 * data-item="<id>" data-status="<status>"; their [data-field] children are
 * updated in place. The endpoint answers {items: [{id, status, status_label,
 * error, chunk_count?, finished}], finished}. With data-poll-reload the page
 * reloads once when everything has finished, so the server renders the result.
 * With data-poll-refresh="<part> ..." those [data-part] elements of the page are
 * fetched afresh instead (the project page's Ask card, once documents are ready).
 *
 * Drop zone: a form with data-dropzone takes files dropped on it, chosen with its
 * picker or pasted anywhere on the page, and posts each one on its own (XHR, so
 * its row shows upload progress) asking for JSON: 201 {id, title, url, status_url,
 * status} (200 when it replaced a document), 409 {errors, existing: {title, url}}
 * for bytes the project already holds (the row offers to replace that document),
 * or 4xx {errors: {field: [message]}}. A row then follows its document (status_url)
 * to ready or failed and clears; a refused file's row says why until dismissed.
 * When all are done the page's [data-part="documents"] list is fetched afresh.
 * Without script the drop zone stays hidden and the plain upload form posts one file.
 *
 * Refreshing panels: an element with data-refresh-url is replaced every 2 s by
 * the HTML fragment that URL answers (the import panel on the project page),
 * until a copy comes without the attribute. Open <details data-key> stay open.
 *
 * Conversations: a turn with data-events-url streams its answer (Server-Sent
 * Events: status, delta, reset, done); on done the server-rendered turn
 * (data-turn-url) replaces it. A form with data-thread-form posts with fetch and
 * appends the new turn, which then streams in place, and the header's turn count
 * ([data-field="turn-count"]) follows. Without script, the same form posts
 * normally and the page polls.
 */
(function () {
  "use strict";

  // GET a URL afresh (never from the HTTP cache): its JSON when `accept` asks for JSON, else its text.
  function getFresh(url, accept) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: accept }, cache: "no-store" })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return accept === "application/json" ? response.json() : response.text();
      });
  }

  var INTERVAL_MS = 1500;
  var MAX_BACKOFF_MS = 15000;
  var MAX_FAILURES = 40;
  var FINISHED = { ready: true, failed: true, succeeded: true };

  function unfinishedItems(container) {
    return Array.prototype.filter.call(
      container.querySelectorAll("[data-item]"),
      function (el) { return !FINISHED[el.getAttribute("data-status")]; }
    );
  }

  function updateItem(el, state) {
    el.setAttribute("data-status", state.status);
    var badge = el.querySelector('[data-field="status"]');
    if (badge) {
      badge.textContent = state.status_label || state.status;
      badge.className = "badge badge-" + state.status;
    }
    var error = el.querySelector('[data-field="error"]');
    if (error) {
      error.textContent = state.error || "";
      error.hidden = !state.error;
    }
    var chunks = el.querySelector('[data-field="chunk_count"]');
    if (chunks && typeof state.chunk_count === "number") {
      chunks.textContent = String(state.chunk_count);
    }
  }

  function startPolling(container) {
    var base = container.getAttribute("data-poll-url");
    var reload = container.hasAttribute("data-poll-reload");
    var refresh = (container.getAttribute("data-poll-refresh") || "").split(" ").filter(Boolean);
    var failures = 0;

    function schedule(delay) { window.setTimeout(tick, delay); }

    function tick() {
      if (!container.isConnected) { return; } // replaced by a fresh copy, which polls itself
      var waiting = unfinishedItems(container);
      if (!waiting.length) { return; }
      if (document.hidden) { schedule(INTERVAL_MS); return; }
      var url = new URL(base, window.location.href);
      waiting.forEach(function (el) { url.searchParams.append("id", el.getAttribute("data-item")); });
      getFresh(url.toString(), "application/json")
        .then(function (data) {
          failures = 0;
          var byId = {};
          (data.items || []).forEach(function (item) { byId[item.id] = item; });
          waiting.forEach(function (el) {
            var state = byId[el.getAttribute("data-item")];
            if (state) {
              updateItem(el, state);
            } else {
              el.setAttribute("data-status", "failed"); // gone (deleted): stop asking about it
            }
          });
          if (unfinishedItems(container).length) {
            schedule(INTERVAL_MS);
          } else if (reload) {
            window.location.reload();
          } else if (refresh.length) {
            refreshParts(refresh);
          }
        })
        .catch(function () {
          failures += 1;
          if (failures < MAX_FAILURES) {
            schedule(Math.min(INTERVAL_MS * Math.pow(2, Math.min(failures, 4)), MAX_BACKOFF_MS));
          }
        });
    }

    schedule(INTERVAL_MS);
  }

  var REFRESH_MS = 2000;

  function carryOver(panel, fresh) {
    // What the reader opened or focused in the old copy, kept in the new one.
    var focused = document.activeElement;
    Array.prototype.forEach.call(panel.querySelectorAll("details[data-key]"), function (old) {
      var twin = fresh.querySelector('details[data-key="' + old.getAttribute("data-key") + '"]');
      if (!twin) { return; }
      twin.open = old.open;
      if (focused && old.contains(focused) && focused.tagName === "SUMMARY") {
        var summary = twin.querySelector("summary");
        if (summary) { window.setTimeout(function () { summary.focus(); }, 0); }
      }
    });
  }

  function startRefreshing(panel) {
    var failures = 0;

    function schedule(delay) { window.setTimeout(tick, delay); }

    function tick() {
      if (!panel.isConnected) { return; }
      if (document.hidden) { schedule(REFRESH_MS); return; }
      getFresh(panel.getAttribute("data-refresh-url"), "text/html")
        .then(function (html) {
          failures = 0;
          var holder = document.createElement("div");
          holder.innerHTML = html.trim();
          var fresh = holder.firstElementChild;
          if (!fresh) { return; }
          carryOver(panel, fresh);
          panel.replaceWith(fresh);
          panel = fresh;
          if (fresh.hasAttribute("data-refresh-url")) { schedule(REFRESH_MS); }
        })
        .catch(function () {
          failures += 1;
          if (failures < MAX_FAILURES) {
            schedule(Math.min(REFRESH_MS * Math.pow(2, Math.min(failures, 3)), MAX_BACKOFF_MS));
          }
        });
    }

    schedule(REFRESH_MS);
  }

  function confirmBeforeSubmit(event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement)) { return; }
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
      return;
    }
    // Stop double submits, after the browser has collected the button's value.
    var buttons = form.querySelectorAll("button[type=submit], button:not([type])");
    window.setTimeout(function () {
      Array.prototype.forEach.call(buttons, function (b) {
        b.disabled = true;
        b.setAttribute("aria-busy", "true");
      });
    }, 0);
  }

  function replaceTurn(turn, url) {
    return getFresh(url, "text/html")
      .then(function (html) {
        var holder = document.createElement("div");
        holder.innerHTML = html.trim();
        var fresh = holder.firstElementChild;
        if (fresh) {
          turn.replaceWith(fresh);
          if (fresh.hasAttribute("data-events-url")) { streamTurn(fresh); }
        }
        return fresh;
      });
  }

  function streamTurn(turn) {
    if (!window.EventSource || turn.getAttribute("data-streaming")) { return; }
    turn.setAttribute("data-streaming", "true");
    var answer = turn.querySelector('[data-field="answer"]');
    var badge = turn.querySelector('[data-field="status"]');
    var turnUrl = turn.getAttribute("data-turn-url");
    var text = null;
    var source = new EventSource(turn.getAttribute("data-events-url"));

    function setText(value) {
      if (!answer) { return; }
      if (text === null) {
        answer.textContent = "";
        text = document.createElement("p");
        text.className = "streamed";
        answer.appendChild(text);
      }
      text.textContent = value;
    }

    source.addEventListener("status", function (event) {
      var data = JSON.parse(event.data);
      turn.setAttribute("data-status", data.status);
      if (badge) {
        badge.textContent = data.label || data.status;
        badge.className = "badge badge-" + data.status;
      }
      var working = turn.querySelector('[data-field="working"]');
      if (working && data.status === "generating") { working.textContent = "Writing the answer…"; }
      if (working && data.status === "retrieving") { working.textContent = "Finding the relevant passages…"; }
    });
    source.addEventListener("delta", function (event) {
      var data = JSON.parse(event.data);
      setText((text ? text.textContent : "") + (data.text || ""));
    });
    source.addEventListener("reset", function () { if (text) { text.textContent = ""; } });
    source.addEventListener("done", function () {
      source.close();
      replaceTurn(turn, turnUrl).catch(function () { window.location.reload(); });
    });
  }

  // The thread header's "N questions": the count the server gave for the new turn, or the
  // turns on the page when that is more (never counts down).
  function showTurnCount(serverCount) {
    var label = document.querySelector('[data-field="turn-count"]');
    if (!label) { return; }
    var onPage = document.querySelectorAll("[data-turn]").length;
    var count = Math.max(Number(serverCount) || 0, onPage, Number(label.getAttribute("data-count")) || 0);
    label.setAttribute("data-count", String(count));
    label.textContent = count + (count === 1 ? " question" : " questions");
  }

  function askInThread(event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-thread-form") || !window.fetch) { return; }
    event.preventDefault();
    var error = form.querySelector('[data-field="form-error"]');
    var button = form.querySelector("button[type=submit]");
    var question = form.querySelector("textarea, input[name=question]");
    if (!question || !question.value.trim()) {
      if (error) { error.textContent = "Type a question first."; error.hidden = false; }
      return;
    }
    if (button) { button.disabled = true; button.setAttribute("aria-busy", "true"); }
    fetch(form.action, {
      method: "POST",
      body: new FormData(form),
      credentials: "same-origin",
      headers: { Accept: "application/json" }
    })
      .then(function (response) {
        return response.json()
          .catch(function () { return { detail: "The question could not be sent (HTTP " + response.status + "); try again." }; })
          .then(function (data) { return { ok: response.ok, data: data }; });
      })
      .then(function (reply) {
        if (!reply.ok) { throw new Error(reply.data.detail || "The question could not be sent."); }
        if (error) { error.hidden = true; }
        question.value = "";
        var turns = document.querySelector('[data-field="turns"]');
        var placeholder = document.createElement("div");
        turns.appendChild(placeholder);
        showTurnCount(reply.data.turn_count);
        return replaceTurn(placeholder, reply.data.turn_url);
      })
      .then(function (turn) {
        showTurnCount(0);
        if (turn) { turn.scrollIntoView({ block: "nearest" }); }
      })
      .catch(function (err) {
        if (error) { error.textContent = err.message; error.hidden = false; }
      })
      .then(function () {
        if (button) { button.disabled = false; button.removeAttribute("aria-busy"); }
        question.focus();
      });
  }

  // --- parts of a page fetched afresh ----------------------------------------

  function refreshParts(names) {
    return getFresh(window.location.href, "text/html")
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        names.forEach(function (name) {
          var selector = '[data-part="' + name + '"]';
          var old = document.querySelector(selector);
          var twin = fresh.querySelector(selector);
          if (!old || !twin) { return; }
          var adopted = document.importNode(twin, true);
          old.replaceWith(adopted);
          if (adopted.hasAttribute("data-poll-url")) { startPolling(adopted); }
          Array.prototype.forEach.call(adopted.querySelectorAll("[data-poll-url]"), startPolling);
        });
      });
  }

  // --- the drop zone ---------------------------------------------------------

  var UPLOADS_AT_ONCE = 2;

  function hasFiles(event) {
    var types = event.dataTransfer && event.dataTransfer.types;
    return !!types && Array.prototype.indexOf.call(types, "Files") !== -1;
  }

  function uploadRow(list, file) {
    var row = document.createElement("li");
    row.className = "upload-row";
    row.setAttribute("data-state", "waiting");
    var name = document.createElement("span");
    name.className = "upload-name";
    name.textContent = file.name || "Pasted file";
    var bar = document.createElement("progress");
    bar.max = 100;
    bar.value = 0;
    bar.setAttribute("aria-label", "Upload of " + name.textContent);
    var note = document.createElement("span");
    note.className = "upload-note";
    note.setAttribute("data-field", "upload-note");
    note.textContent = "Waiting…";
    row.appendChild(name);
    row.appendChild(bar);
    row.appendChild(note);
    list.appendChild(row);
    return { row: row, name: name, bar: bar, note: note };
  }

  var ROW_CLEARS_AFTER_MS = 4000;

  function clearRow(row) {
    var list = row.row.parentNode;
    row.row.remove();
    if (list && !list.children.length) { list.hidden = true; }
  }

  // A refused upload: no progress bar, the reason, and a button to dismiss the row.
  function refuseRow(row, message) {
    row.row.setAttribute("data-state", "failed");
    row.bar.hidden = true;
    row.note.textContent = message;
    var dismiss = document.createElement("button");
    dismiss.type = "button";
    dismiss.className = "btn btn-small btn-ghost";
    dismiss.textContent = "Dismiss";
    dismiss.setAttribute("aria-label", "Dismiss " + row.name.textContent);
    dismiss.addEventListener("click", function () { clearRow(row); });
    row.note.appendChild(document.createTextNode(" "));
    row.note.appendChild(dismiss);
  }

  // The document is stored: the row follows it to ready or failed, then clears.
  function followRow(row, doc) {
    row.bar.hidden = true;
    var settle = function (status, error) {
      row.row.setAttribute("data-state", status === "ready" ? "added" : "failed");
      row.note.textContent = status === "ready" ? "Ready" : "Failed" + (error ? ": " + error : "");
      window.setTimeout(function () { clearRow(row); }, ROW_CLEARS_AFTER_MS);
    };
    if (FINISHED[doc.status] || !doc.status_url) { settle(doc.status, ""); return; }
    row.row.setAttribute("data-state", "processing");
    row.note.textContent = "Processing…";
    var failures = 0;
    var check = function () {
      getFresh(doc.status_url, "application/json").then(function (data) {
        var state = (data.items || [])[0] || {};
        if (state.finished) { settle(state.status, state.error); return; }
        row.note.textContent = (state.status_label || "Processing") + "…";
        window.setTimeout(check, INTERVAL_MS);
      }).catch(function () {
        failures += 1;
        if (failures > MAX_FAILURES) { row.note.textContent = "Added; its progress shows in the table."; return; }
        window.setTimeout(check, Math.min(INTERVAL_MS * Math.pow(2, failures), MAX_BACKOFF_MS));
      });
    };
    window.setTimeout(check, INTERVAL_MS);
  }

  function uploadError(xhr, zone) {
    var data = null;
    try { data = JSON.parse(xhr.responseText); } catch (ignored) { data = null; }
    if (data && data.errors) {
      var found = [];
      Object.keys(data.errors).forEach(function (field) { found = found.concat(data.errors[field]); });
      if (found.length) { return found.join(" "); }
    }
    if (data && data.detail) { return data.detail; }
    if (xhr.status === 413) { return zone.getAttribute("data-too-large"); }
    if (xhr.status === 403) { return "Not allowed: you may be signed out or no longer an editor. Reload the page."; }
    if (xhr.status === 429) { return "Too many uploads just now; wait a moment and try again."; }
    return "The upload failed (HTTP " + xhr.status + "); try again.";
  }

  // 409: the project holds these bytes already. Say which document, and offer to replace it.
  function offerReplace(zone, file, row, xhr, done) {
    var data = {};
    try { data = JSON.parse(xhr.responseText); } catch (ignored) { data = {}; }
    var existing = data.existing || {};
    row.row.setAttribute("data-state", "duplicate");
    row.bar.hidden = true;
    row.note.textContent = "Already in the project as ";
    var link = document.createElement("a");
    link.href = existing.url || "#documents";
    link.textContent = existing.title || "another document";
    row.note.appendChild(link);
    row.note.appendChild(document.createTextNode(". "));
    var replace = document.createElement("button");
    replace.type = "button";
    replace.className = "btn btn-small";
    replace.textContent = "Replace it";
    replace.setAttribute("data-action", "replace");
    var keep = document.createElement("button");
    keep.type = "button";
    keep.className = "btn btn-small btn-ghost";
    keep.textContent = "Keep the existing one";
    replace.addEventListener("click", function () {
      row.bar.hidden = false;
      row.bar.value = 0;
      sendFile(zone, file, row, true).then(done);
    });
    keep.addEventListener("click", function () { clearRow(row); done(false); });
    row.note.appendChild(replace);
    row.note.appendChild(document.createTextNode(" "));
    row.note.appendChild(keep);
  }

  // Resolves true once the file is stored, false if refused; a duplicate waits for the person's choice.
  function sendFile(zone, file, row, replace) {
    return new Promise(function (resolve) {
      var max = Number(zone.getAttribute("data-max-bytes")) || 0;
      if (max && file.size > max) {
        // The server refuses it unread; sending it all first would only waste the wait.
        refuseRow(row, zone.getAttribute("data-too-large"));
        resolve(false);
        return;
      }
      var token = zone.querySelector("input[name=csrfmiddlewaretoken]");
      var body = new FormData();
      body.append("csrfmiddlewaretoken", token ? token.value : "");
      body.append("file", file, file.name || "pasted");
      if (replace) { body.append("replace", "on"); }
      var xhr = new XMLHttpRequest();
      xhr.open("POST", zone.action);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.addEventListener("progress", function (event) {
        if (event.lengthComputable) { row.bar.value = Math.round((100 * event.loaded) / event.total); }
      });
      xhr.addEventListener("load", function () {
        if (xhr.status === 409) {
          offerReplace(zone, file, row, xhr, resolve);
          return;
        }
        if (xhr.status !== 201 && xhr.status !== 200) {
          refuseRow(row, uploadError(xhr, zone));
          resolve(false);
          return;
        }
        var doc = {};
        try { doc = JSON.parse(xhr.responseText); } catch (ignored) { doc = {}; }
        if (doc.url) {
          var link = document.createElement("a");
          link.href = doc.url;
          link.textContent = doc.title || row.name.textContent;
          row.name.textContent = "";
          row.name.appendChild(link);
        }
        followRow(row, doc);
        resolve(true);
      });
      xhr.addEventListener("error", function () {
        refuseRow(row, "The upload was interrupted; check the connection and try again.");
        resolve(false);
      });
      row.row.setAttribute("data-state", "uploading");
      row.note.textContent = "Uploading…";
      xhr.send(body);
    });
  }

  function startDropzone(zone) {
    var list = zone.querySelector('[data-field="upload-rows"]');
    var picker = zone.querySelector("input[type=file]");
    var queue = [];
    var active = 0;
    var added = 0;

    function finished() {
      zone.removeAttribute("aria-busy");
      if (!added) { return; }
      added = 0;
      var parts = ["documents", "documents-count"];
      Array.prototype.forEach.call(document.querySelectorAll("[data-part][data-part-waiting]"), function (el) {
        parts.push(el.getAttribute("data-part"));
      });
      refreshParts(parts).catch(function () { window.location.reload(); });
    }

    function pump() {
      while (active < UPLOADS_AT_ONCE && queue.length) {
        var job = queue.shift();
        active += 1;
        sendFile(zone, job.file, job.row, false).then(function (ok) {
          active -= 1;
          if (ok) { added += 1; }
          if (queue.length || active) { pump(); } else { finished(); }
        });
      }
    }

    function take(files) {
      var chosen = Array.prototype.slice.call(files || []);
      if (!chosen.length) { return; }
      list.hidden = false;
      zone.setAttribute("aria-busy", "true");
      chosen.forEach(function (file) { queue.push({ file: file, row: uploadRow(list, file) }); });
      pump();
    }

    function isOtherFileInput(target) {
      return target instanceof HTMLInputElement && target.type === "file" && target !== picker;
    }

    zone.hidden = false;
    zone.addEventListener("submit", function (event) { event.preventDefault(); });
    picker.addEventListener("change", function () {
      take(picker.files);
      picker.value = "";
    });
    // Files dropped anywhere on the page (but on another file field) go to the zone,
    // rather than the browser opening them in place of the page.
    document.addEventListener("dragover", function (event) {
      if (!hasFiles(event) || isOtherFileInput(event.target)) { return; }
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
      zone.classList.add("is-dragover");
    });
    document.addEventListener("dragleave", function (event) {
      if (!event.relatedTarget) { zone.classList.remove("is-dragover"); }
    });
    document.addEventListener("drop", function (event) {
      zone.classList.remove("is-dragover");
      if (!hasFiles(event) || isOtherFileInput(event.target)) { return; }
      event.preventDefault();
      take(event.dataTransfer.files);
    });
    // Pasted files upload; pasted text goes on into the field it was pasted in.
    document.addEventListener("paste", function (event) {
      var files = event.clipboardData && event.clipboardData.files;
      if (!files || !files.length) { return; }
      event.preventDefault();
      take(files);
    });
  }

  function init() {
    Array.prototype.forEach.call(document.querySelectorAll("[data-poll-url]"), startPolling);
    Array.prototype.forEach.call(document.querySelectorAll("[data-refresh-url]"), startRefreshing);
    Array.prototype.forEach.call(document.querySelectorAll("[data-events-url]"), streamTurn);
    Array.prototype.forEach.call(document.querySelectorAll("[data-dropzone]"), startDropzone);
    document.addEventListener("submit", askInThread);
    document.addEventListener("submit", confirmBeforeSubmit);
    // A page restored from the back/forward cache must not keep disabled buttons.
    window.addEventListener("pageshow", function () {
      Array.prototype.forEach.call(document.querySelectorAll("button[aria-busy]"), function (b) {
        b.disabled = false;
        b.removeAttribute("aria-busy");
      });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
