"""Screenshots and axe-core accessibility audits of Docent's pages, at a desktop and a phone width.

axe-core comes from npm (tests/e2e/package.json, installed into tests/e2e/node_modules) so the
rules that judge the pages are pinned like any other dependency. The site's CSP (django-csp)
allows only same-origin script files (`script-src 'self'`, no nonce), so
`page.add_script_tag(path=...)`, which inlines the file, is refused ("Executing inline script
violates ... 'script-src 'self''"). axe's source is evaluated through Playwright instead (the
DevTools protocol is not governed by the page's CSP), rather than `bypass_csp=True`: the pages
are audited under their real policy, so a CSP error the site itself causes still shows.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"  # Debian's chromium package: `playwright install` cannot download here
AXE_JS = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"
VIEWPORTS: dict[str, dict[str, int]] = {
    "desktop": {"width": 1366, "height": 900},
    "phone": {"width": 390, "height": 844},
}
# Every WCAG 2.0, 2.1 and 2.2 level A and AA rule axe has; best practices are left out.
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
# Any WCAG A/AA violation fails, whatever axe's impact: "minor" still means a criterion is not met.
FAILING_IMPACTS = frozenset({"minor", "moderate", "serious", "critical"})
INSTALL_HINT = "npm ci --prefix tests/e2e --no-audit --no-fund"


@contextmanager
def chromium_page(viewport: dict[str, int] | None = None, **context: Any) -> Iterator[Page]:
    """A page in the system Chromium, headless, at the desktop width unless told otherwise
    (`context`: more of Playwright's context options, e.g. has_touch and is_mobile for a phone)."""
    assert os.path.exists(CHROMIUM), f"{CHROMIUM} is missing (apt-get install chromium)"
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        made = browser.new_context(viewport=viewport or VIEWPORTS["desktop"], **context)
        try:
            yield made.new_page()
        finally:
            made.close()
            browser.close()


def screenshots_dir() -> Path:
    """Where screenshots and the audit report go: kept after the run for a person to look at."""
    folder = Path(os.environ.get("DOCENT_SCREENSHOTS_DIR") or ROOT / "var" / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _axe_source() -> str:
    if not AXE_JS.is_file():
        raise AssertionError(f"{AXE_JS} is missing: run `{INSTALL_HINT}` from the project root")
    return AXE_JS.read_text(encoding="utf-8")


def _inject_axe(page: Page) -> None:
    """Evaluate axe's source in the page: a <script> tag of it would be refused by the CSP."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(f"() => {{ {_axe_source()}\n}}")
        # axe.min.js is a UMD bundle: inside a function it still sets window.axe.
        if not page.evaluate("() => typeof window.axe === 'object'"):
            raise AssertionError("axe-core did not load into the page")


def _settle(page: Page) -> None:
    """Wait for the page and its web fonts, so screenshots and contrast checks see the final look."""
    page.wait_for_load_state("load")
    page.evaluate("() => document.fonts.ready.then(() => true)")


@dataclass(frozen=True)
class Violation:
    """One axe rule broken on one page at one width, with the elements that break it."""

    page: str
    viewport: str
    rule: str
    impact: str
    description: str
    help_url: str
    nodes: list[dict[str, str]]

    def describe(self) -> str:
        lines = [f"[{self.impact}] {self.page} @ {self.viewport}: {self.rule} ({self.description})"]
        lines.append(f"    help: {self.help_url}")
        for node in self.nodes:
            lines.append(f"    - {node['target']}")
            if node["summary"]:
                lines.append("      " + node["summary"].replace("\n", "\n      "))
        return "\n".join(lines)


def audit(page: Page, name: str, viewport: str = "") -> list[Violation]:
    """Run axe's WCAG 2 A/AA rules on the page as it is now and return what it violates."""
    _settle(page)
    _inject_axe(page)
    results: dict[str, Any] = page.evaluate(
        """(tags) => axe.run(document, {
            runOnly: {type: 'tag', values: tags},
            resultTypes: ['violations'],
        })""",
        WCAG_TAGS,
    )
    label = viewport or (f"{page.viewport_size['width']}px" if page.viewport_size else "page")
    return [
        Violation(
            page=name,
            viewport=label,
            rule=v["id"],
            impact=v.get("impact") or "unknown",
            description=v["help"],
            help_url=v["helpUrl"],
            nodes=[
                {
                    "target": " ".join(" >> ".join(t) if isinstance(t, list) else t for t in n["target"]),
                    "html": n.get("html", ""),
                    "summary": n.get("failureSummary", ""),
                }
                for n in v["nodes"]
            ],
        )
        for v in results["violations"]
    ]


def screenshot(page: Page, name: str, viewport: str = "") -> Path:
    """Save a full-page PNG of the page at its current viewport as NAME-VIEWPORT.png."""
    _settle(page)
    label = viewport or (f"{page.viewport_size['width']}px" if page.viewport_size else "page")
    path = screenshots_dir() / f"{name}-{label}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


# Layout faults a screenshot shows but axe does not judge: a page wider than the viewport (the
# phone scrolls sideways), text or controls sticking out of their card (a long address in "About
# this run"), a date in a table or run list broken over lines, a control cut off by a wrapper
# that scrolls or clips it, or with its own text cut short. Other content inside a scroll or clip
# container (a wide table's text, an ellipsised title) is that container's business, not a fault.
LAYOUT_FAULTS_JS = """() => {
  const root = document.documentElement;
  const faults = [];
  const name = (el) => {
    let s = el.tagName.toLowerCase();
    if (el.id) s += "#" + el.id;
    for (const c of el.classList) s += "." + c;
    const owner = el.parentElement && el.parentElement.closest("[id]");
    return owner && owner !== el ? `#${owner.id} ${s}` : s;
  };
  const text = (el) => (el.textContent || el.value || "").trim().replace(/\\s+/g, " ").slice(0, 50);
  // True when el, or an ancestor up to and including `top`, scrolls or clips what overflows it.
  const contained = (el, top) => {
    for (let a = el; a && a !== top.parentElement; a = a.parentElement) {
      if (getComputedStyle(a).overflowX !== "visible") return true;
    }
    return false;
  };
  const hidden = (el) => !!el.closest(".visually-hidden, [hidden]");
  const outside = (r, box) => r.width > 0 && (r.right > box.right + 1 || r.left < box.left - 1);

  const width = root.clientWidth;
  if (root.scrollWidth > width + 1) {
    // The outermost boxes past the edge (an absolutely placed one escapes a scrolling wrapper).
    const past = (el) => el && el.getBoundingClientRect().right > width + 1;
    const wide = [...document.body.querySelectorAll("*")].filter((el) => {
      if (!past(el) || el.getBoundingClientRect().width === 0) return false;
      const position = getComputedStyle(el).position;
      return position === "absolute" || position === "fixed" || !past(el.parentElement);
    }).filter((el) => {
      const position = getComputedStyle(el).position;
      return position === "absolute" || position === "fixed" || !contained(el.parentElement, document.body);
    });
    faults.push(`the page is ${root.scrollWidth}px wide in a ${width}px viewport (it scrolls sideways): `
      + wide.slice(0, 6).map((el) => `${name(el)} ("${text(el)}")`).join(", "));
  }

  for (const card of document.querySelectorAll(".card")) {
    const box = card.getBoundingClientRect();
    if (!box.width) continue;
    const out = new Set();
    const walker = document.createTreeWalker(card, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const el = node.parentElement;
      if (!node.textContent.trim() || hidden(el) || contained(el, card)) continue;
      const range = document.createRange();
      range.selectNodeContents(node);
      if ([...range.getClientRects()].some((r) => outside(r, box))) out.add(el);
    }
    for (const el of card.querySelectorAll("*")) {
      if (hidden(el) || contained(el.parentElement, card)) continue;
      const position = getComputedStyle(el).position;
      if (position === "absolute" || position === "fixed") continue;
      if (outside(el.getBoundingClientRect(), box)) out.add(el);
    }
    for (const el of out) {
      if (![...out].some((other) => other !== el && other.contains(el))) {
        faults.push(`${name(el)} ("${text(el)}") sticks out of its card ${name(card)}`);
      }
    }
  }

  // A control must be whole where it stands: not cut off by a wrapper that scrolls or clips
  // (the Delete button of a wide documents table, "Dele…"), nor its own text cut short.
  const controls = "button, a.btn, input:not([type=hidden]), select, textarea, summary";
  for (const el of document.querySelectorAll(controls)) {
    const r = el.getBoundingClientRect();
    if (hidden(el) || !r.width || getComputedStyle(el).visibility === "hidden") continue;
    if (el.scrollWidth > el.clientWidth + 1 && !["INPUT", "TEXTAREA", "SELECT"].includes(el.tagName)) {
      faults.push(`${name(el)} ("${text(el)}") has its text cut short (${el.scrollWidth}px in ${el.clientWidth}px)`);
      continue;
    }
    for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
      if (getComputedStyle(a).overflowX === "visible") continue;
      if (outside(r, a.getBoundingClientRect())) {
        faults.push(`${name(el)} ("${text(el)}") is cut off by ${name(a)}, which scrolls or clips it`);
      }
      break;
    }
  }

  for (const time of document.querySelectorAll(".table time, .run-row time")) {
    const lines = new Set([...time.getClientRects()].filter((r) => r.width > 0).map((r) => Math.round(r.top)));
    if (lines.size > 1) faults.push(`${name(time)} ("${text(time)}") wraps onto ${lines.size} lines`);
  }
  return faults;
}"""


def layout_faults(page: Page, name: str, viewport: str = "") -> list[str]:
    """The loaded page's layout faults (LAYOUT_FAULTS_JS), each prefixed with page and width."""
    _settle(page)
    label = viewport or (f"{page.viewport_size['width']}px" if page.viewport_size else "page")
    return [f"{name} @ {label}: {fault}" for fault in page.evaluate(LAYOUT_FAULTS_JS)]


@dataclass
class Findings:
    """What the walk found: axe violations and layout faults, gathered over every page."""

    violations: list[Violation] = field(default_factory=list)
    layout: list[str] = field(default_factory=list)

    def __iadd__(self, other: Findings) -> Findings:
        self.violations += other.violations
        self.layout += other.layout
        return self


def check_page(page: Page, name: str, ready: str = "") -> Findings:
    """Screenshot, audit and check the layout of the loaded page at each width (reloaded per width,
    as a visitor would arrive at it), leaving the desktop width set; returns what it found.
    `ready`, a selector, waits for a page its script renders (the API docs) after each load."""
    found = Findings()
    for label, size in VIEWPORTS.items():
        if page.viewport_size != size:
            page.set_viewport_size(size)
            page.reload()
        if ready:
            page.wait_for_selector(ready, state="visible")
        screenshot(page, name, label)
        found.violations += audit(page, name, label)
        found.layout += layout_faults(page, name, label)
    page.set_viewport_size(VIEWPORTS["desktop"])
    return found


def failing(violations: list[Violation]) -> list[Violation]:
    return [v for v in violations if v.impact in FAILING_IMPACTS or v.impact == "unknown"]


def write_report(violations: list[Violation], layout: list[str] | None = None) -> Path:
    """Keep the full list as JSON next to the screenshots, for the templates' owners (layout
    faults, when given, go to layout-faults.json beside it)."""
    path = screenshots_dir() / "axe-violations.json"
    path.write_text(json.dumps([v.__dict__ for v in violations], indent=2), encoding="utf-8")
    if layout is not None:
        (screenshots_dir() / "layout-faults.json").write_text(json.dumps(layout, indent=2), encoding="utf-8")
    return path


def assert_accessible(violations: list[Violation]) -> None:
    """Fail naming each rule, its impact, the failing elements and the rule's help page."""
    bad = failing(violations)
    if not bad:
        return
    report = write_report(violations)
    pages = sorted({v.page for v in bad})
    body = "\n".join(v.describe() for v in bad)
    raise AssertionError(
        f"{len(bad)} accessibility violation(s) (WCAG 2 A/AA, axe-core) on {len(pages)} page(s): "
        f"{', '.join(pages)}\n{body}\n(full report: {report}; screenshots: {screenshots_dir()})"
    )
