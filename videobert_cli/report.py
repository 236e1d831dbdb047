"""The demo's report: one self-contained HTML page (pictures inlined) and a short text summary."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _img(path: Path, alt: str, width: int | None = None) -> str:
    if not path.exists():
        return f"<p><em>{html.escape(alt)}: not made ({html.escape(str(path))})</em></p>"
    data = base64.b64encode(path.read_bytes()).decode()
    size = f' width="{width}"' if width else ""
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"{size}>' \
           f"<figcaption>{html.escape(alt)}</figcaption></figure>"


def scores_rows(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """(what, figure, model, chance, prior, shuffled) rows of an evaluation's metrics."""
    rows = []
    for what in ("verb", "object"):
        m = metrics[what]
        control = metrics.get(f"shuffled_{what}", {})
        for fig in [k for k in m if k.startswith("top")]:
            rows.append({"what": what, "figure": fig, "model": m[fig], "chance": m[f"chance_{fig}"],
                         "prior": m[f"prior_{fig}"], "shuffled": control.get(fig)})
    return rows


def caption_rows(captions: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(row name, its scores) of a captioning run's metrics.json, the VideoBERT row first (the examples left out)."""
    return sorted(((name, m) for name, m in captions.items() if name != "examples"),
                  key=lambda row: row[0] != "videobert+clip")


def write_report(path: Path, *, title: str, facts: Sequence[tuple[str, str]], metrics: dict[str, Any] | None,
                 pictures: Sequence[tuple[Path, str]], locations: Sequence[tuple[str, str]],
                 captions: dict[str, Any] | None = None) -> Path:
    """The HTML report: facts (a two-column table), the zero-shot scores beside chance, the frequency prior and
    the shuffled-video control, the captioning scores of both rows with a few (reference, prediction) pairs, the
    pictures, and where everything is."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}"
             "figure{margin:1.5em 0}img{max-width:100%;border:1px solid #ddd}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>", "<table>"]
    parts += [f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in facts]
    parts.append("</table>")
    if metrics:
        parts.append(f"<h2>Zero-shot classification on held-out videos</h2><p>{metrics['segments']} segments of "
                     f"{metrics['videos']} videos, {metrics['verbs']} verbs, {metrics['objects']} objects; the "
                     "shuffled control gives each segment another segment's video tokens.</p>")
        parts.append("<table><tr><th>what</th><th>figure</th><th>model</th><th>chance</th><th>frequency prior</th>"
                     "<th>shuffled video</th></tr>")
        for r in scores_rows(metrics):
            shuffled = "-" if r["shuffled"] is None else f"{r['shuffled']:.1%}"
            parts.append(f"<tr><td>{r['what']}</td><td>{r['figure']}</td><td><b>{r['model']:.1%}</b></td>"
                         f"<td>{r['chance']:.1%}</td><td>{r['prior']:.1%}</td><td>{shuffled}</td></tr>")
        parts.append("</table>")
        if probe := metrics.get("feature_probe"):
            parts.append(f"<p>Without pre-training, a nearest-centroid probe on the clip features alone (each segment's "
                         f"mean clip feature against the training segments' class means): verb {probe['verb']:.1%}, "
                         f"object {probe['object']:.1%}.</p>")
        if t2v := metrics.get("text_to_video"):
            parts.append(f"<h2>Text-to-video, measured</h2><p>For each of {t2v['sentences']} held-out sentences, the "
                         f"model's {t2v['tokens'] // max(t2v['sentences'], 1)} generated video tokens, each read as the "
                         "(verb, object) of its nearest training clip; the share that matches the sentence "
                         f"({t2v['mapped_tokens']} tokens had a class).</p>")
            parts.append("<table><tr><th>what</th><th>model</th><th>chance</th><th>shuffled sentences</th></tr>")
            for what in ("verb", "object", "both"):
                parts.append(f"<tr><td>{what}</td><td><b>{t2v[what]:.1%}</b></td><td>{t2v[f'chance_{what}']:.1%}</td>"
                             f"<td>{t2v[f'shuffled_{what}']:.1%}</td></tr>")
            parts.append("</table>")
    if captions:
        from videobert.captioning.metrics import LABELS, METRICS

        rows = caption_rows(captions)
        parts.append(f"<h2>Captioning of held-out segments</h2><p>{rows[0][1]['segments']} segments; captioners trained "
                     f"on {rows[0][1]['train_segments']} segments: over the model's features beside the clip features, "
                     "and over the clip features alone. BLEU, METEOR and ROUGE-L in %, CIDEr as is (the paper's "
                     "scales).</p><table><tr><th>inputs</th>" + "".join(f"<th>{LABELS[k]}</th>" for k in METRICS)
                     + "</tr>")
        for name, m in rows:
            parts.append(f"<tr><td>{html.escape(name)}</td>" + "".join(
                f"<td>{m[k]:.3f}</td>" if k == "cider" else f"<td>{m[k]:.2f}</td>" for k in METRICS) + "</tr>")
        parts.append("</table>")
        named = dict(rows)
        if {"videobert+clip", "clip"} <= set(named):
            a, b = named["videobert+clip"], named["clip"]
            parts.append(f"<p>The gain of the VideoBERT features: CIDEr {a['cider'] - b['cider']:+.3f}, BLEU-4 "
                         f"{a['bleu_4'] - b['bleu_4']:+.2f}, METEOR {a['meteor'] - b['meteor']:+.2f} (the README's "
                         "Captioning section says why the demo's videos show none).</p>")
        parts.append("<table><tr><th>reference</th>"
                     + "".join(f"<th>{html.escape(n)}</th>" for n, _ in rows) + "</tr>")
        for e in captions.get("examples", []):
            parts.append(f"<tr><td>{html.escape(e['reference'])}</td>"
                         + "".join(f"<td>{html.escape(str(e.get(n, '')))}</td>" for n, _ in rows) + "</tr>")
        parts.append("</table>")
    parts += [_img(p, alt) for p, alt in pictures]
    parts.append("<h2>Where things are</h2><table>")
    parts += [f"<tr><th>{html.escape(k)}</th><td><code>{html.escape(v)}</code></td></tr>" for k, v in locations]
    parts.append("</table></body></html>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts))
    return path
