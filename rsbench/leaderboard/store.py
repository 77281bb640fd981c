"""The leaderboard store: records copied under deterministic names, tables generated from them.

``leaderboards/records/<dataset>/<method>/<protocol>-s<seed>-<checkpoint sha256[:8]>.json`` (and its
``.npz``). Adding a record already there is a no-op; a different record under the same key is kept
as another run (``...-run2.json``); nothing is overwritten. ``build`` renders ``<dataset>.md`` and
``.csv`` per dataset (methods x protocols, ranked, 95 % intervals, links to the records; reported
numbers in their own table, generated data in its own files) and ``index.html``; ``check`` says
whether the committed files equal what the records generate.
"""

from __future__ import annotations

import html
import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from rsbench.errors import ConfigError
from rsbench.leaderboard.compare import compare, format_cell
from rsbench.results import find_records, per_image_path, read_record

IDENTITY = ("method", "method_digest", "protocol", "protocol_digest", "checkpoint_sha256", "dataset", "split",
            "data_fingerprint", "convention", "fill", "summary", "conditions")


def record_key(rec: dict[str, Any]) -> str:
    sha = (rec.get("checkpoint_sha256") or "none")[:8]
    return f"{rec['protocol']}-s{rec['provenance'].get('seed')}-{sha}"


def _same(a: dict, b: dict) -> bool:
    return all(a.get(k) == b.get(k) for k in IDENTITY)


def add(paths: list[Path], root: Path) -> list[tuple[Path, Path, str]]:
    """Copy records into the store; returns (source, destination, "added" | "present" | "another run")."""
    found = find_records(paths)  # all are validated, and their .npz partners found, before anything is copied
    for src, rec in found:
        if rec.get("per_image"):
            per_image_path(src, rec)
    out = []
    for src, rec in found:
        folder = root / "records" / rec["dataset"] / rec["method"]
        key = record_key(rec)
        status, run = "added", 1
        while True:
            dest = folder / (f"{key}.json" if run == 1 else f"{key}-run{run}.json")
            if not dest.exists():
                break
            if _same(read_record(dest), rec):
                status = "present"
                break
            run += 1
            status = "another run"
        if status != "present":
            folder.mkdir(parents=True, exist_ok=True)
            stored = dict(rec)
            if rec.get("per_image"):
                npz = dest.with_suffix(".npz")
                shutil.copyfile(src.parent / rec["per_image"], npz)
                stored["per_image"] = npz.name
            dest.write_text(json.dumps(stored, indent=2) + "\n")
        out.append((src, dest, status))
    return out


def _reported(root: Path) -> list[dict[str, Any]]:
    path = root / "reported.yaml"
    if not path.is_file():
        return []
    data = yaml.safe_load(path.read_text()) or {}
    entries = data.get("entries", [])
    for i, e in enumerate(entries):
        missing = [k for k in ("model", "dataset", "split", "source", "values") if k not in e]
        if missing:
            raise ConfigError(f"{path}: entry {i} lacks {', '.join(missing)}")
    return entries


def build(root: Path, n_boot: int = 1000) -> dict[str, str]:
    """File name (relative to ``root``) -> generated text, for every dataset with records or reported numbers."""
    records_root = root / "records"
    datasets = sorted(p.name for p in records_root.iterdir() if p.is_dir()) if records_root.is_dir() else []
    reported = _reported(root)
    files: dict[str, str] = {}
    sections = []
    for ds in sorted(set(datasets) | {e["dataset"] for e in reported}):
        result = None
        if ds in datasets:
            result = compare([records_root / ds], dataset=ds, n_boot=n_boot)
        rep = [e for e in reported if e["dataset"] == ds]
        files[f"{ds}.md"] = _markdown(ds, result, rep)
        files[f"{ds}.csv"] = _csv(result, rep)
        sections.append(_html_section(ds, result, rep, root))
    files["index.html"] = _html_page(sections)
    return files


def write(root: Path, n_boot: int = 1000) -> list[Path]:
    out = []
    for name, text in build(root, n_boot).items():
        (root / name).write_text(text)
        out.append(root / name)
    return out


def check(root: Path, n_boot: int = 1000) -> list[str]:
    """Problems: files that differ from what the records generate (an invalid record raises ConfigError)."""
    problems = []
    for name, text in build(root, n_boot).items():
        path = root / name
        if not path.is_file():
            problems.append(f"{path} is missing (run rsbench leaderboard build)")
        elif path.read_text() != text:
            problems.append(f"{path} differs from what the records generate (run rsbench leaderboard build)")
    return problems


def _ranked(result: dict[str, Any]) -> list[str]:
    key = "emm" if "emm" in result["protocols"] else result["protocols"][0]
    cells = result["cells"]
    return sorted(result["methods"], key=lambda m: -(cells[m, key].value if (m, key) in cells else float("-inf")))


def _markdown(ds: str, result: dict[str, Any] | None, reported: list[dict]) -> str:
    lines = [f"# {ds}", "", "<!-- generated by `rsbench leaderboard build`; edit the records, not this file -->", ""]
    if ds.endswith("-synth"):
        lines += ["Generated data in the benchmark's layout (`rsbench data synth`): these numbers say nothing about",
                  "the real dataset and never share a table with it.", ""]
    if result is not None:
        lines += ["## Reproduced", "",
                  "mIoU (nanmean unless the records say otherwise); each protocol's headline (`full`, else the",
                  "average over its conditions) with a 95 % interval: over seeds (t) when n > 1, else a bootstrap over",
                  "the val images. Ranked by `emm`. Records: `records/" + ds + "/<method>/`.", ""]
        protocols = result["protocols"]
        lines.append("| rank | method | " + " | ".join(protocols) + " |")
        lines.append("|---:|---|" + "---:|" * len(protocols))
        for i, m in enumerate(_ranked(result), 1):
            cells = [format_cell(result["cells"][m, p]) if (m, p) in result["cells"] else "" for p in protocols]
            lines.append(f"| {i} | [{m}](records/{ds}/{m}/) | " + " | ".join(cells) + " |")
        lines.append("")
    if reported:
        keys = list(dict.fromkeys(k for e in reported for k in e["values"]))
        lines += ["## Reported (published numbers, not reproduced here)", "",
                  "| model | " + " | ".join(keys) + " | convention | released file | source |",
                  "|---|" + "---:|" * len(keys) + "---|---|---|"]
        notes: dict[str, str] = {}
        for e in reported:
            derived = set((e.get("derived") or {}).get("keys", []))
            if derived:
                notes[" ".join(sorted(derived))] = e["derived"]["how"]
            vals = [(f"{e['values'][k]:.2f}" + ("*" if k in derived else "")) if k in e["values"] else ""
                    for k in keys]
            src = f"{e['source']['paper']}; {e['source']['table']}"
            conv = e.get("convention") or "not stated"
            released = f"`{e['released']}`" if e.get("released") else ""
            lines.append(f"| {e['model']} | " + " | ".join(vals) + f" | {conv} | {released} | {src} |")
        lines.append("")
        for keys_text, how in notes.items():
            lines += [f"\\* {keys_text}: not printed in the source; {how}. Released files: `rsbench models`.", ""]
    return "\n".join(lines)


def _csv(result: dict[str, Any] | None, reported: list[dict]) -> str:
    lines = ["kind,method,protocol,value,low,high,runs"]
    if result is not None:
        for (m, p), c in sorted(result["cells"].items()):
            lines.append(f"reproduced,{m},{p},{c.value:.4f},{c.low:.4f},{c.high:.4f},{c.runs}")
    for e in reported:
        for k, v in e["values"].items():
            lines.append(f"reported,{e['model']},{k},{v:.4f},,,")
    return "\n".join(lines) + "\n"


def _html_section(ds: str, result: dict[str, Any] | None, reported: list[dict], root: Path) -> str:
    parts = [f"<h2>{html.escape(ds)}</h2>"]
    if result is not None:
        protocols = result["protocols"]
        head = "".join(f"<th data-col='{i + 1}'>{html.escape(p)}</th>" for i, p in enumerate(protocols))
        rows = []
        for m in _ranked(result):
            cells = "".join(
                f"<td data-value='{result['cells'][m, p].value:.4f}'>{html.escape(format_cell(result['cells'][m, p]))}"
                "</td>" if (m, p) in result["cells"] else "<td data-value=''></td>" for p in protocols)
            rows.append(f"<tr><td>{html.escape(m)}</td>{cells}</tr>")
        parts.append(f"<table class='sortable' id='{html.escape(ds)}-reproduced'><thead><tr><th data-col='0'>method"
                     f"</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")
        parts.append(_bars(ds, result, root))
    if reported:
        keys = list(dict.fromkeys(k for e in reported for k in e["values"]))
        head = "".join(f"<th data-col='{i + 1}'>{html.escape(k)}</th>" for i, k in enumerate(keys))
        rows = "".join(
            f"<tr><td>{html.escape(e['model'])}</td>" + "".join(
                f"<td data-value='{e['values'][k]}'>{e['values'][k]:.2f}</td>" if k in e["values"]
                else "<td data-value=''></td>" for k in keys) + "</tr>" for e in reported)
        parts.append(f"<h3>reported</h3><table class='sortable' id='{html.escape(ds)}-reported'><thead><tr>"
                     f"<th data-col='0'>model</th>{head}</tr></thead><tbody>{rows}</tbody></table>")
    return "\n".join(parts)


def _bars(ds: str, result: dict[str, Any], root: Path) -> str:
    """Per-subset EMM mIoU of each method (mean over its runs), as CSS bars."""
    if "emm" not in result["protocols"]:
        return ""
    out = ["<h3>EMM per subset</h3><div class='bars'>"]
    for m in _ranked(result):
        cell = result["cells"].get((m, "emm"))
        if cell is None:
            continue
        recs = [read_record(p) for p in cell.records]
        keys = list(recs[0]["conditions"])
        out.append(f"<div class='method'><b>{html.escape(m)}</b>")
        for k in keys:
            v = sum(r["conditions"][k]["miou"] for r in recs) / len(recs)
            out.append(f"<div class='bar'><span class='label'>{html.escape(k)}</span>"
                       f"<span class='fill' style='width:{max(v, 0):.1f}%'></span><span class='v'>{v:.1f}</span></div>")
        out.append("</div>")
    out.append("</div>")
    return "".join(out)


def _html_page(sections: list[str]) -> str:
    return """<!doctype html>
<html><head><meta charset="utf-8"><title>rsbench leaderboards</title>
<style>
body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:right}td:first-child{text-align:left}
th{cursor:pointer;background:#eee}.bars{display:flex;flex-wrap:wrap;gap:2em}.bar{display:flex;align-items:center;
font-size:11px;width:360px}.label{width:170px}.fill{background:#4a7fd4;height:9px;display:inline-block}.v{margin-left:4px}
</style></head><body>
<h1>rsbench leaderboards</h1>
<p>Generated by <code>rsbench leaderboard build</code> from the records in <code>records/</code>.
Click a column to sort.</p>
""" + "\n".join(sections) + """
<script>
document.querySelectorAll("table.sortable th").forEach(function (th) {
  th.addEventListener("click", function () {
    var table = th.closest("table"), col = +th.dataset.col, body = table.tBodies[0];
    var desc = th.dataset.desc !== "1"; th.dataset.desc = desc ? "1" : "0";
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[col].dataset.value, y = b.cells[col].dataset.value;
      if (x === undefined) { x = a.cells[col].textContent; y = b.cells[col].textContent;
        return desc ? y.localeCompare(x) : x.localeCompare(y); }
      x = x === "" ? -Infinity : +x; y = y === "" ? -Infinity : +y;
      return desc ? y - x : x - y;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
// index.html#sort=TABLE_ID:COLUMN sorts a table on load (links and tests use it)
var m = /^#sort=(.+):(\\d+)$/.exec(decodeURIComponent(location.hash));
if (m) { var t = document.getElementById(m[1]); if (t) t.querySelectorAll("th")[+m[2]].click(); }
</script>
</body></html>
"""
