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
import math
import shutil
from pathlib import Path
from typing import Any

import yaml

from rsbench.errors import ConfigError
from rsbench.leaderboard.compare import compare, format_cell
from rsbench.leaderboard.rules import check_pooling, drop_duplicates
from rsbench.results import find_records, read_per_image, read_record

IDENTITY = ("method", "method_digest", "protocol", "protocol_digest", "checkpoint_sha256", "dataset", "split",
            "data_fingerprint", "convention", "fill", "summary", "conditions")


def record_key(rec: dict[str, Any]) -> str:
    sha = (rec.get("checkpoint_sha256") or "none")[:8]
    return f"{rec['protocol']}-s{rec['provenance'].get('seed')}-{sha}"


def _same(a: dict, b: dict) -> bool:
    return all(a.get(k) == b.get(k) for k in IDENTITY)


STORE_HINT = ("the store pools a method's records as seeds: file this training under another method name, "
              "or move the other records out")


def add(paths: list[Path], root: Path) -> list[tuple[Path, Path, str]]:
    """Copy records into the store; returns (source, destination, "added" | "present" | "another run").

    Before anything is copied, every record is validated, its ``.npz`` read and checked against it, and the
    records of each method, with those already stored, must pool as seeds (``rsbench.leaderboard.rules``:
    one training, distinct seeds), as ``build`` will require.
    """
    found = find_records(paths)
    for src, rec in found:
        if rec.get("per_image"):
            read_per_image(src, rec)
    for dataset, method in sorted({(r["dataset"], r["method"]) for _, r in found}):
        folder = root / "records" / dataset / method
        stored = find_records([folder]) if folder.is_dir() else []
        mine = [(p, r) for p, r in found if (r["dataset"], r["method"]) == (dataset, method)]
        check_pooling(drop_duplicates(stored + mine)[0], force=False, hint=STORE_HINT)
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


REPORTED_FIELDS = ("model", "dataset", "split", "source", "values")
REPORTED_OPTIONAL = ("resolution", "convention", "released", "derived")


def _reported(root: Path) -> list[dict[str, Any]]:
    """The entries of ``reported.yaml``, validated: one-line errors naming the file and the entry."""
    path = root / "reported.yaml"
    if not path.is_file():
        return []
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{at} ({getattr(exc, 'problem', None) or type(exc).__name__})"
                          ) from None
    if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
        raise ConfigError(f"{path}: expected a mapping with a list 'entries'")
    entries = data["entries"]
    for i, e in enumerate(entries):
        _check_reported(path, i, e)
    return entries


def _check_reported(path: Path, i: int, e: Any) -> None:
    if not isinstance(e, dict):
        raise ConfigError(f"{path}: entry {i} is not a mapping")
    name = f"entry {i} ({e.get('model')}, {e.get('dataset')})"

    def bad(field: str, why: str) -> ConfigError:
        return ConfigError(f"{path}: {name}: field {field!r} {why}")

    missing = [k for k in REPORTED_FIELDS if k not in e]
    if missing:
        raise ConfigError(f"{path}: {name} lacks {', '.join(missing)}")
    unknown = sorted(set(e) - set(REPORTED_FIELDS) - set(REPORTED_OPTIONAL))
    if unknown:
        raise bad(unknown[0], f"is not an entry field ({', '.join(REPORTED_FIELDS + REPORTED_OPTIONAL)})")
    for key in ("model", "dataset", "split"):
        if not isinstance(e[key], str) or not e[key]:
            raise bad(key, "is not a name")
    source = e["source"]
    if not isinstance(source, dict) or not all(isinstance(source.get(k), str) and source[k] for k in ("paper",
                                                                                                       "table")):
        raise bad("source", "needs a paper and a table (text)")
    values = e["values"]
    if not isinstance(values, dict) or not values:
        raise bad("values", "is not a non-empty mapping of protocol names to numbers")
    for key, value in values.items():
        if not isinstance(key, str) or not isinstance(value, (int, float)) or isinstance(value, bool) or not (
                math.isfinite(value)):
            raise bad(f"values.{key}", f"is {value!r}, not a finite number")
    if e.get("convention") is not None and not isinstance(e["convention"], str):
        raise bad("convention", "is not a name or null")
    resolution = e.get("resolution")
    if resolution is not None and (not isinstance(resolution, int) or isinstance(resolution, bool) or resolution < 1):
        raise bad("resolution", f"is {resolution!r}, not a positive size or null")
    released = e.get("released")
    if released is not None:
        from rsbench.models.zoo.released import released_checkpoints

        known = released_checkpoints()
        if not isinstance(released, str) or released not in known:
            raise bad("released", f"is {released!r}, not a released checkpoint (`rsbench models`) or null")
        if known[released].dataset != e["dataset"]:
            raise bad("released", f"names {released}, a checkpoint for {known[released].dataset}")
    derived = e.get("derived")
    if derived is not None:
        if not isinstance(derived, dict) or set(derived) != {"keys", "how"}:
            raise bad("derived", "needs exactly keys (a list of value names) and how (text)")
        keys = derived["keys"]
        if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
            raise bad("derived.keys", "is not a non-empty list of value names")
        absent = [k for k in keys if k not in values]
        if absent:
            raise bad("derived.keys", f"names {', '.join(absent)}, not among the entry's values")
        if not isinstance(derived["how"], str) or not derived["how"].strip():
            raise bad("derived.how", "is not text")


def build(root: Path, n_boot: int = 1000) -> dict[str, str]:
    """File name (relative to ``root``) -> generated text, for every dataset with records or reported numbers."""
    return build_with_notes(root, n_boot)[0]


def build_with_notes(root: Path, n_boot: int = 1000) -> tuple[dict[str, str], list[str]]:
    """(``build``'s files, one note per dataset whose records repeat an evaluation, counted once)."""
    records_root = root / "records"
    datasets = sorted(p.name for p in records_root.iterdir() if p.is_dir()) if records_root.is_dir() else []
    reported = _reported(root)
    files: dict[str, str] = {}
    notes: list[str] = []
    sections = []
    for ds in sorted(set(datasets) | {e["dataset"] for e in reported}):
        result = None
        if ds in datasets:
            result = compare([records_root / ds], dataset=ds, n_boot=n_boot, relative_to=root)
            if result["duplicates_note"]:
                notes.append(f"{ds}: {result['duplicates_note']}")
        rep = [e for e in reported if e["dataset"] == ds]
        files[f"{ds}.md"] = _markdown(ds, result, rep)
        files[f"{ds}.csv"] = _csv(result, rep)
        sections.append(_html_section(ds, result, rep, root))
    files["index.html"] = _html_page(sections)
    return files, notes


def write(root: Path, n_boot: int = 1000) -> list[Path]:
    return write_with_notes(root, n_boot)[0]


def write_with_notes(root: Path, n_boot: int = 1000) -> tuple[list[Path], list[str]]:
    """Everything is built (and so checked) before the first file is written."""
    files, notes = build_with_notes(root, n_boot)
    out = []
    for name, text in files.items():
        (root / name).write_text(text)
        out.append(root / name)
    return out, notes


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
        if result["duplicates_note"]:
            lines += [f"Note: {result['duplicates_note']}.", ""]
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
        if result["duplicates_note"]:
            parts.append(f"<p class='note'>{html.escape(result['duplicates_note'])}.</p>")
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
