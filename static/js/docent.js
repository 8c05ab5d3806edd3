/* Docent page behaviour. Loaded with `defer`; no inline scripts anywhere (CSP).
 *
 * Live updates: an element with data-poll-url polls that JSON endpoint until
 * every item it contains has finished. Items are descendants marked
 * data-item="<id>" data-status="<status>"; their [data-field] children are
 * updated in place. The endpoint answers {items: [{id, status, status_label,
 * error, chunk_count?, finished}], finished}. With data-poll-reload the page
 * reloads once when everything has finished, so the server renders the result.
 */
(function () {
  "use strict";

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
    var failures = 0;

    function schedule(delay) { window.setTimeout(tick, delay); }

    function tick() {
      var waiting = unfinishedItems(container);
      if (!waiting.length) { return; }
      if (document.hidden) { schedule(INTERVAL_MS); return; }
      var url = new URL(base, window.location.href);
      waiting.forEach(function (el) { url.searchParams.append("id", el.getAttribute("data-item")); });
      fetch(url.toString(), {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
        cache: "no-store"
      })
        .then(function (response) {
          if (!response.ok) { throw new Error("HTTP " + response.status); }
          return response.json();
        })
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

  function init() {
    Array.prototype.forEach.call(document.querySelectorAll("[data-poll-url]"), startPolling);
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
