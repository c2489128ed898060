"""Issue 15 in a real browser: the API tokens page (create, shown once, copy, confirmed
revoke), an automated WCAG contrast check of the main pages in both themes, no horizontal
overflow at 390 px, and the screenshots under docs/screenshots/ (written there when
ALEPHANT_SCREENSHOTS=1, else to a temporary directory)."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from django.utils import timezone

from attribution.services.rollups import rollup_workspace
from billing.services.budgets import budget_create
from tests.attribution.factories import usage
from tests.browser.conftest import ROOT, log_in
from tests.cast import PASSWORD, build_cast
from workspaces.models import APIToken
from workspaces.tenancy import workspace_scope

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# For every visible element with its own text: the contrast of its colour against the first
# opaque background behind it (WCAG 2.x relative luminance). Alpha is blended over white/black.
CONTRAST_JS = """
() => {
  const parse = (c) => { const m = c.match(/rgba?\\(([^)]+)\\)/); if (!m) return null;
    const p = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number); return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; };
  const lum = ([r, g, b]) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  const bgOf = (el) => { for (let n = el; n; n = n.parentElement) { const c = parse(getComputedStyle(n).backgroundColor);
      if (c && c[3] > 0.5) return c; } return parse(getComputedStyle(document.documentElement).backgroundColor) || [255, 255, 255, 1]; };
  const out = [];
  for (const el of document.querySelectorAll("body *")) {
    if (["SCRIPT", "STYLE", "svg", "title", "desc"].includes(el.tagName)) continue;
    if (el.closest("svg")) continue;
    const own = Array.from(el.childNodes).some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own) continue;
    const r = el.getBoundingClientRect(); const s = getComputedStyle(el);
    if (!r.width || !r.height || s.visibility === "hidden" || s.display === "none" || +s.opacity === 0) continue;
    if (el.closest(".visually-hidden, .skip-link")) continue;
    const fg = parse(s.color); const bg = bgOf(el);
    const mix = fg.slice(0, 3).map((v, i) => v * fg[3] + bg[i] * (1 - fg[3]));
    const [a, b] = [lum(mix), lum(bg)];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    out.push({ tag: el.tagName, cls: el.className && el.className.baseVal === undefined ? el.className : "",
               text: el.textContent.trim().slice(0, 40), ratio: Math.round(ratio * 100) / 100 });
  }
  return out;
}
"""

# The innermost elements that stick out past the viewport (for the failure message).
WIDE_JS = """
(w) => Array.from(document.querySelectorAll("body *")).filter((el) =>
  el.getBoundingClientRect().right > w + 1 && !Array.from(el.children).some(
    (c) => c.getBoundingClientRect().right > w + 1)).slice(0, 8).map((el) =>
  el.tagName + "." + (el.className.baseVal ?? el.className) + " " +
  Math.round(el.getBoundingClientRect().right))
"""


def _world():
    cast = build_cast(prefix="ac-")
    ws, now = cast.workspace, timezone.now()
    last_month = (now.date().replace(day=1) - dt.timedelta(days=1)).replace(day=12)
    with workspace_scope(ws.pk):
        for i in range(12):
            usage(
                ws,
                at=now - dt.timedelta(minutes=3 + i),
                cost="0.42",
                member=cast.member,
                department=cast.member.department,
                session_id="run-7",
                model="gpt-4o",
                status_code=502 if i == 3 else 200,
                error_type="upstream" if i == 3 else "",
                latency_ms=300 + i * 10,
            )
        usage(
            ws,
            at=now - dt.timedelta(minutes=20),
            cost="0",
            member=cast.member,
            cache_hit=True,
            saved_usd="0.42",
        )
        usage(
            ws,
            at=dt.datetime.combine(last_month, dt.time(9), tzinfo=dt.UTC),
            cost="9.5",
            member=cast.member,
        )
        rollup_workspace(workspace=ws)
        budget_create(
            workspace=ws,
            actor=None,
            scope_type="member",
            scope_id=cast.member.pk,
            metric="usd",
            amount_usd=10,
            period="month",
        )
    return cast, last_month


def _pages(cast, last_month) -> dict[str, str]:
    return {
        "overview": "/",
        "drilldown": f"/spend/members/{cast.member.pk}/",
        "session": "/spend/sessions/run-7/",
        "period-close": f"/budgets/?period=month&date={last_month.isoformat()}",
        "settings": "/settings/",
        "api-tokens": "/settings/api-tokens/",
    }


def test_api_tokens_page_creates_copies_and_revokes(live_app, page):
    cast = build_cast(prefix="at-")
    log_in(page, live_app.url, cast.member.user.email, PASSWORD)
    page.goto(live_app.url + "/settings/api-tokens/")
    page.fill("input[name=name]", "deploy script")
    page.select_option("select[name=scope]", "read")
    page.click("form >> text=Create token")
    raw = page.locator("#new-token").inner_text()
    assert raw.startswith("alpt_")
    page.click("[data-copy='#new-token']")
    page.wait_for_selector("[data-copied=true]")
    page.goto(live_app.url + "/settings/api-tokens/")  # shown once: not on the next visit
    assert page.locator("#new-token").count() == 0
    prompts = []
    page.on("dialog", lambda d: (prompts.append(d.message), d.accept()))
    page.click("[data-token] >> text=Revoke")
    page.wait_for_selector("text=revoked")
    assert prompts and "Revoke token deploy script" in prompts[0]
    with workspace_scope(cast.workspace.pk):
        assert APIToken.objects.get(member=cast.member).revoked_at is not None


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_text_contrast_is_at_least_4_5_in_both_themes(live_app, page, scheme):
    cast, last_month = _world()
    page.emulate_media(color_scheme=scheme)
    log_in(page, live_app.url, cast.owner.user.email, PASSWORD)
    failures = []
    for name, path in _pages(cast, last_month).items():
        page.goto(live_app.url + path)
        checked = page.evaluate(CONTRAST_JS)
        assert len(checked) > 10, name
        failures += [(name, c) for c in checked if c["ratio"] < 4.5]
    assert failures == [], failures[:15]


def test_main_pages_fit_390_px_and_screenshots(live_app, page, tmp_path):
    cast, last_month = _world()
    out = ROOT / "docs" / "screenshots" if os.environ.get("ALEPHANT_SCREENSHOTS") else tmp_path
    log_in(page, live_app.url, cast.finance.user.email, PASSWORD)
    for width, height in ((1440, 900), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        for name, path in _pages(cast, last_month).items():
            page.goto(live_app.url + path)
            overflow = page.evaluate("document.documentElement.scrollWidth")
            wide = page.evaluate(WIDE_JS, width) if overflow > width + 1 else []
            assert overflow <= width + 1, (name, width, overflow, wide)
            if name in ("overview", "drilldown", "session", "period-close"):
                page.screenshot(path=str(Path(out) / f"{name}-{width}.png"), full_page=True)
    assert (Path(out) / "overview-390.png").stat().st_size > 1000
