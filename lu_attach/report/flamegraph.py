"""A self-contained, interactive flame graph (SVG), in the style of flamegraph.pl.

No dependency: one SVG file with inline CSS and JavaScript that opens in any
browser.  Hover a frame for its figures (a ``<title>`` tooltip and the details
line at the bottom), click to zoom into it, "Reset Zoom" (or Escape) to come
back; type a regular expression in the search box (Ctrl-F focuses it) to
highlight matching frames and see the share of time they cover.  URL
parameters work too: ``graph.svg?s=manager`` searches, ``?f=12`` zooms into
frame 12.

Layout: the bottom frame ``all`` holds one frame per process and thread
(``pid 4510 / MainThread``), above which the call tree grows.  A frame's width
is its self time plus its children's widths (see :func:`.model.flame_weights`),
so no time is counted twice.  Siblings are sorted by name, so the output is
deterministic.  Frames narrower than ``min_width`` pixels are left out.
"""

from __future__ import annotations

import re
import zlib
from typing import Dict, List, Optional, Tuple

from .model import CallNode, Report, ThreadProfile, flame_weights
from .text import human_ns

WIDTH = 1200
FRAME_H = 16
FONT_SIZE = 12
CHAR_W = FONT_SIZE * 0.59
PAD_X = 10
PAD_TOP = 56
PAD_BOTTOM = 34

_GREYS = {"thread": "rgb(190,190,205)"}  # frames that are not functions: threads, the process root
_BAD_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def xml_escape(s: str) -> str:
    s = _BAD_XML.sub("?", s)
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def frame_color(name: str) -> str:
    """A warm colour derived from the name (stable across runs and machines)."""
    h = zlib.crc32(name.encode("utf-8", "replace"))
    v1, v2, v3 = (h & 0xFF) / 255, ((h >> 8) & 0xFF) / 255, ((h >> 16) & 0xFF) / 255
    return f"rgb({205 + int(50 * v3)},{int(230 * v1)},{int(55 * v2)})"


def fit_text(name: str, width: float) -> str:
    n = int((width - 6) / CHAR_W)
    if n < 3:
        return ""
    return name if len(name) <= n else name[: n - 2] + ".."


class _Frame:
    __slots__ = ("depth", "kind", "name", "ns", "parent", "title", "w", "x")

    def __init__(self, name: str, depth: int, x: float, w: float, ns: int, parent: int, title: str, kind: str) -> None:
        self.name, self.depth, self.x, self.w, self.ns = name, depth, x, w, ns
        self.parent, self.title, self.kind = parent, title, kind


def _pct(part: float, whole: float) -> str:
    return f"{100.0 * part / whole:.2f}%" if whole else "0%"


def _node_title(node: CallNode, width_ns: int, all_ns: int, sampled: bool) -> str:
    if sampled:
        share = _pct(width_ns, all_ns)
        lines = [node.function, f"{node.hits:,} samples (about {human_ns(node.total_ns)}) · {share} of all"]
        if node.file:
            lines.append(node.file + (f":{node.line}" if node.line is not None else ""))
        return "\n".join(lines)
    calls = "1 call" if node.hits == 1 else f"{node.hits:,} calls"
    second = f"{calls} · {human_ns(node.total_ns)} in all"
    if node.hits > 1:
        second += f" · {human_ns(node.per_hit_ns)} per call"
    return "\n".join([node.function, second, f"self {human_ns(node.self_ns)} · {_pct(width_ns, all_ns)} of all"])


def layout(report: Report, width: int = WIDTH, min_width: float = 0.1) -> Tuple[List[_Frame], int, int]:
    """Frames in pre-order (parents before children) with pixel geometry.

    Returns ``(frames, max_depth, omitted)``.
    """
    threads: List[Tuple[ThreadProfile, Dict[int, int], int]] = []
    for t in report.threads():
        weights = flame_weights(t.roots)
        total = sum(weights[id(r)] for r in t.roots.values())
        if total > 0:
            threads.append((t, weights, total))
    all_ns = sum(total for _, _, total in threads)
    frames: List[_Frame] = []
    if not all_ns:
        return frames, 0, 0
    scale = (width - 2 * PAD_X) / all_ns
    nthreads = len(threads)
    nprocs = len({t.pid for t, _, _ in threads})
    what = "sampled" if report.sampled else "profiled"
    frames.append(
        _Frame(
            "all",
            0,
            PAD_X,
            all_ns * scale,
            all_ns,
            -1,
            f"all\n{human_ns(all_ns)} {what} in {nthreads} thread{'s' * (nthreads != 1)}"
            f" of {nprocs} process{'es' * (nprocs != 1)}",
            "all",
        )
    )
    omitted = 0
    max_depth = 1
    x_thread = 0.0
    for t, weights, total in threads:
        tx = PAD_X + x_thread * scale
        x_thread += total
        if total * scale < min_width:
            omitted += 1
            continue
        ti = len(frames)
        frames.append(
            _Frame(
                t.label,
                1,
                tx,
                total * scale,
                total,
                0,
                f"{t.label}\n{human_ns(total)} {what} · {_pct(total, all_ns)} of all",
                "thread",
            )
        )
        # iterative pre-order; children by name, laid out left to right
        stack: List[Tuple[CallNode, int, float, int]] = []
        offs = 0.0
        starts = []
        for k in sorted(t.roots):
            starts.append((t.roots[k], offs))
            offs += weights[id(t.roots[k])]
        for r, off in reversed(starts):
            stack.append((r, 2, tx + off * scale, ti))
        while stack:
            node, depth, x, parent = stack.pop()
            w_ns = weights[id(node)]
            w = w_ns * scale
            if w < min_width or w_ns == 0:
                omitted += 1
                continue
            i = len(frames)
            frames.append(
                _Frame(node.function, depth, x, w, w_ns, parent, _node_title(node, w_ns, all_ns, report.sampled), "fn")
            )
            max_depth = max(max_depth, depth)
            cx = x
            kids = []
            for k in sorted(node.children):
                c = node.children[k]
                kids.append((c, depth + 1, cx, i))
                cx += weights[id(c)] * scale
            stack.extend(reversed(kids))
    return frames, max_depth, omitted


_CSS = """
text { font-family: Verdana, sans-serif; font-size: 12px; fill: #000; }
#title { font-size: 17px; text-anchor: middle; }
#frames > g { cursor: pointer; }
#frames > g:hover rect { stroke: #000; stroke-width: 0.5; }
#frames > g.parent { opacity: 0.5; }
#frames text { pointer-events: none; }
.button { cursor: pointer; fill: #333; text-decoration: underline; }
.hide { display: none; }
#matched { text-anchor: end; }
input { font: 12px Verdana, sans-serif; width: 100%; box-sizing: border-box; padding: 1px 4px; }
"""

_JS = r"""
"use strict";
var W = __WIDTH__, PAD = __PAD__, CHAR_W = __CHAR_W__, MATCH = "rgb(230,0,230)";
var frames = [], details, matched, unzoomBtn, box, zoomed = null, term = "";
function $(id) { return document.getElementById(id); }
function init() {
  details = $("details").firstChild; matched = $("matched").firstChild;
  unzoomBtn = $("unzoom"); box = $("search");
  var gs = $("frames").children;
  for (var i = 0; i < gs.length; i++) {
    var g = gs[i], r = g.firstElementChild.nextElementSibling;
    g._i = i; g._r = r; g._t = r.nextElementSibling;
    g._x = +r.getAttribute("x"); g._w = +r.getAttribute("width");
    g._d = +g.getAttribute("data-d"); g._fill = r.getAttribute("fill");
    g._name = g.getAttribute("data-name");
    g._p = g.hasAttribute("data-p") ? frames[+g.getAttribute("data-p")] : null;
    g._info = g.firstElementChild.textContent.split("\n").join("  \u00b7  ");
    frames.push(g);
  }
  var fr = $("frames");
  fr.addEventListener("mouseover", function (e) { var g = frameOf(e); if (g) details.nodeValue = g._info; });
  fr.addEventListener("mouseout", function (e) { if (frameOf(e)) details.nodeValue = " "; });
  fr.addEventListener("click", function (e) { var g = frameOf(e); if (g) zoom(g); });
  unzoomBtn.addEventListener("click", unzoom);
  if (box) box.addEventListener("input", function () { search(box.value); });
  window.addEventListener("keydown", function (e) {
    if ((e.ctrlKey || e.metaKey) && e.key === "f" && box) { e.preventDefault(); box.focus(); box.select(); }
    else if (e.key === "Escape") { unzoom(); if (box) box.value = ""; search(""); }
  });
  var q = new URLSearchParams(window.location.search);
  if (q.get("f") !== null && frames[+q.get("f")]) zoom(frames[+q.get("f")]);
  if (q.get("s")) { if (box) box.value = q.get("s"); search(q.get("s")); }
}
function frameOf(e) {
  var n = e.target;
  while (n && !(n.parentNode && n.parentNode.id === "frames")) n = n.parentNode;
  return n && n._r ? n : null;
}
function fit(name, w) {
  var n = Math.floor((w - 6) / CHAR_W);
  if (n < 3) return "";
  return name.length <= n ? name : name.slice(0, n - 2) + "..";
}
function place(g, x, w) {
  g._r.setAttribute("x", x.toFixed(2)); g._r.setAttribute("width", w.toFixed(2));
  g._t.setAttribute("x", (x + 3).toFixed(2)); g._t.textContent = fit(g._name, w);
}
function under(g, top) {  // g is top or one of its descendants
  while (g && g._d > top._d) g = g._p;
  return g === top;
}
function zoom(top) {
  var scale = (W - 2 * PAD) / top._w, anc = {};
  for (var a = top._p; a; a = a._p) anc[a._i] = true;
  frames.forEach(function (g) {
    if (anc[g._i]) { g.style.display = ""; g.classList.add("parent"); place(g, PAD, W - 2 * PAD); }
    else if (under(g, top)) { g.style.display = ""; g.classList.remove("parent"); place(g, PAD + (g._x - top._x) * scale, g._w * scale); }
    else { g.style.display = "none"; }
  });
  zoomed = top;
  unzoomBtn.classList.toggle("hide", top._d === 0);
  search(term);
}
function unzoom() {
  frames.forEach(function (g) { g.style.display = ""; g.classList.remove("parent"); place(g, g._x, g._w); });
  zoomed = null; unzoomBtn.classList.add("hide");
  search(term);
}
function search(t) {
  term = t || "";
  var re = null;
  if (term) { try { re = new RegExp(term); } catch (err) { re = new RegExp(term.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")); } }
  var lo = zoomed ? zoomed._x : frames.length ? frames[0]._x : 0;
  var hi = zoomed ? zoomed._x + zoomed._w : frames.length ? frames[0]._x + frames[0]._w : 0;
  var spans = [];
  frames.forEach(function (g) {
    var hit = re !== null && re.test(g._name);
    g._r.setAttribute("fill", hit ? MATCH : g._fill);
    if (hit && g.style.display !== "none") spans.push([Math.max(g._x, lo), Math.min(g._x + g._w, hi)]);
  });
  if (!re) { matched.nodeValue = " "; return; }
  spans.sort(function (a, b) { return a[0] - b[0]; });
  var covered = 0, end = -Infinity;
  spans.forEach(function (s) {  // union, so nested matches count once
    if (s[1] <= end) return;
    covered += s[1] - Math.max(s[0], end); end = s[1];
  });
  var pct = hi > lo ? 100 * covered / (hi - lo) : 0;
  matched.nodeValue = "Matched: " + pct.toFixed(1) + "%";
}
window.addEventListener("load", init);
"""


def default_title(report: Report) -> str:
    """What the graph shows, with the process when there is one, so a saved file says where it came from."""
    pids = sorted(report.processes)
    if len(pids) == 1 and report.processes[pids[0]].merged_from:
        where = f" of {report.processes[pids[0]].name}"
    elif len(pids) == 1:
        where = f" of process {pids[0]}"
    else:
        where = f" of processes {', '.join(map(str, pids))}" if pids else ""
    return f"Flame graph: {report.kind}{where}"


def render_flamegraph(report: Report, title: Optional[str] = None, width: int = WIDTH, min_width: float = 0.1) -> str:
    """The flame graph of all processes and threads of ``report`` as SVG text."""
    frames, max_depth, omitted = layout(report, width, min_width)
    height = PAD_TOP + (max_depth + 1) * FRAME_H + PAD_BOTTOM
    if title is None:
        title = default_title(report)
    out: List[str] = []
    w = out.append
    w('<?xml version="1.0" standalone="no"?>\n')
    w(
        f'<svg version="1.1" width="{width}" height="{height}" viewBox="0 0 {width} {height}"'
        ' xmlns="http://www.w3.org/2000/svg">\n'
    )
    w(f"<style>{_CSS}</style>\n")
    js = _JS.replace("__WIDTH__", str(width)).replace("__PAD__", str(PAD_X)).replace("__CHAR_W__", f"{CHAR_W:.3f}")
    w(f"<script><![CDATA[{js}]]></script>\n")
    w(f'<rect x="0" y="0" width="{width}" height="{height}" fill="#f8f8f8"/>\n')
    w(f'<text id="title" x="{width / 2:.1f}" y="24">{xml_escape(title)}</text>\n')
    w(f'<text id="unzoom" class="button hide" x="{PAD_X}" y="24">Reset Zoom</text>\n')
    w(
        f'<foreignObject x="{width - PAD_X - 240}" y="8" width="240" height="24">'
        '<input xmlns="http://www.w3.org/1999/xhtml" id="search" type="search"'
        ' placeholder="Search (regexp, Ctrl-F)" autocomplete="off"/></foreignObject>\n'
    )
    w(f'<text id="matched" x="{width - PAD_X}" y="{height - 12}"> </text>\n')
    w(f'<text id="details" x="{PAD_X}" y="{height - 12}"> </text>\n')
    if not frames:
        w(f'<text x="{width / 2:.1f}" y="{PAD_TOP + 10}" text-anchor="middle">no call data to draw</text>\n')
    w('<g id="frames">\n')
    base = height - PAD_BOTTOM
    for f in frames:
        y = base - (f.depth + 1) * FRAME_H
        fill = frame_color(f.name) if f.kind == "fn" else _GREYS.get(f.kind, "rgb(210,210,210)")
        parent = f' data-p="{f.parent}"' if f.parent >= 0 else ""
        w(
            f'<g class="{f.kind}" data-d="{f.depth}" data-name="{xml_escape(f.name)}" data-ns="{f.ns}"{parent}>'
            f"<title>{xml_escape(f.title)}</title>"
            f'<rect x="{f.x:.3f}" y="{y}" width="{f.w:.3f}" height="{FRAME_H - 1}" fill="{fill}" rx="2" ry="2"/>'
            f'<text x="{f.x + 3:.2f}" y="{y + FRAME_H - 4.5:.1f}">{xml_escape(fit_text(f.name, f.w))}</text></g>\n'
        )
    w("</g>\n")
    if omitted:
        w(f"<!-- {omitted} frames narrower than {min_width} px left out -->\n")
    w("</svg>\n")
    return "".join(out)
