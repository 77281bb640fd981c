"""Comparisons that cannot mislead, on constructed records: the validator's values, a record's .npz against
its JSON, one evaluation counted once, one training per method, distinct seeds, reported.yaml."""

from __future__ import annotations

import copy
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rsbench.cli import app
from rsbench.errors import ConfigError
from rsbench.leaderboard import compare
from rsbench.results import _write_npz, read_per_image, read_record, write_record
from tests.test_compare import _counts, with_counts
from tests.test_results import _set, minimal_record

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def rec_file(folder: Path, name: str, method: str = "teacher", seed: int | None = 0, sha: str | None = "auto",
             iters: int | None = 3600, card: dict | None = None, shift: int = 0, n: int = 40, **fields) -> Path:
    """A consistent record with its .npz: counts drawn from ``seed`` (and ``shift`` on class 0), numbers from them."""
    rec = minimal_record()
    rec.update(method=method, **fields)
    rec["checkpoint_sha256"] = f"{method}{seed}{iters}".ljust(64, "0") if sha == "auto" else sha
    rec["provenance"]["seed"] = seed
    if iters is not None:
        rec["provenance"]["trained_iters"] = iters
    rec["card"] = {} if card is None else card
    counts = _counts(np.random.default_rng(seed or 0).integers(200, 800, n), shift)
    with_counts(rec, counts)
    rec["summary"] = {"full": rec["conditions"]["a+b"]["miou"], "avg": rec["conditions"]["a"]["miou"]}
    return write_record(rec, folder / name, counts)


# ---------------------------------------------------------------------------------------------- validator
@pytest.mark.parametrize(("dotted", "value", "message"), [
    ("summary.avg", float("nan"), "'summary.avg' is nan, not a finite number"),
    ("summary.full", float("inf"), "'summary.full' is inf, not a finite number"),
    ("conditions.a.miou", float("nan"), "'conditions.a.miou' is nan, not a finite number"),
    ("conditions.a.pixel_acc", float("-inf"), "'conditions.a.pixel_acc' is -inf, not a finite number"),
    ("conditions.a.miou", -1.0, "'conditions.a.miou' is -1.0, not an mIoU in percent"),
    ("conditions.a.per_class_iou", [140.0, None], r"'conditions.a.per_class_iou\[0\]' is 140.0, not an IoU"),
    ("num_samples", -3, "'num_samples' is -3; a count must be at least 1"),
    ("num_samples", 0, "'num_samples' is 0; a count must be at least 1"),
    ("resolution", 0, "'resolution' is 0; a count must be at least 1"),
    ("provenance.world_size", -1, "'provenance.world_size' is -1; a count must be at least 1"),
    ("provenance.trained_iters", -200, "'provenance.trained_iters' is -200; a count must be at least 0"),
    ("provenance.wall_time_s", -1.0, "'provenance.wall_time_s' is -1.0, not a time in seconds"),
    ("conditions.a.num_classes", 3, "'conditions.a.per_class_iou' has 2 entries for 3 classes"),
    ("conditions.a.num_classes", -2, "'conditions.a.num_classes' is -2; a count must be at least 1"),
    ("conditions.a.per_class_iou", [40.0], "'conditions.a.per_class_iou' has 1 entries, 'conditions.a\\+b"),
])
def test_validator_refuses_non_finite_negative_and_short(tmp_path: Path, dotted: str, value, message: str) -> None:
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(_set(minimal_record(), dotted, value)))  # json writes NaN and Infinity tokens
    with pytest.raises(ConfigError, match=f"broken.json: field {message}"):
        read_record(path)
    out = runner.invoke(app, ["compare", str(path)])
    assert out.exit_code == 2 and "broken.json: field" in out.stderr and len(out.stderr.splitlines()) == 1


def test_a_non_finite_record_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    bad = _set(minimal_record(), "summary.avg", math.inf)
    with pytest.raises(ConfigError, match="'summary.avg' is inf"):
        write_record(bad, tmp_path / "r.json", _counts(np.arange(300, 304), 0))
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------------------------------ .npz vs JSON
def _renpz(record: Path, counts: dict) -> None:
    record.with_suffix(".npz").unlink()
    _write_npz(record.with_suffix(".npz"), counts)


def test_a_record_beside_another_record_s_npz_is_refused(tmp_path: Path) -> None:
    a = rec_file(tmp_path / "a", "r.json", seed=0)
    b = rec_file(tmp_path / "b", "r.json", seed=1, shift=40)
    assert read_per_image(a) and compare([a], n_boot=50)["cells"]["teacher", "emm"].runs == 1
    shutil.copyfile(b.with_suffix(".npz"), a.with_suffix(".npz"))  # b's counts beside a's JSON
    with pytest.raises(ConfigError, match=r"a/r\.json: its per-image counts r\.npz are not the record's: condition "
                                          r"a\+b, class 0: their totals give IoU [\d.]+, the record [\d.]+"):
        read_per_image(a)
    out = runner.invoke(app, ["compare", str(a), "--format", "csv"])
    assert out.exit_code == 2 and len(out.stderr.splitlines()) == 1 and "are not the record's" in out.stderr
    assert out.stdout == ""  # nothing printed: found before any statistic


def test_the_npz_must_hold_the_record_s_conditions_samples_and_classes(tmp_path: Path) -> None:
    counts = _counts(np.random.default_rng(0).integers(200, 800, 40), 0)

    def each(change, samples=counts["sample_index"]) -> dict:
        return {"sample_index": samples, **{k: change(*v) for k, v in counts.items() if k != "sample_index"}}

    cases = [
        ({"sample_index": counts["sample_index"], "a": counts["a"]}, r"hold conditions a; the record has a\+b, a"),
        (each(lambda i, u: (i[:30], u[:30]), counts["sample_index"][:30]), "hold 30 samples; the record has 40"),
        (each(lambda i, u: (np.c_[i, i[:, :1]], np.c_[u, u[:, :1]])), r"a\+b counts 3 classes; the record has 2"),
        (each(lambda i, u: (i - 500, u)), r"condition a\+b has negative counts or an intersection above its union"),
        (each(lambda i, u: (i, np.zeros_like(u))), r"condition a\+b has negative counts or an intersection above"),
    ]
    for i, (npz, message) in enumerate(cases):
        path = rec_file(tmp_path / str(i), "r.json")
        _renpz(path, npz)
        with pytest.raises(ConfigError, match=message):
            compare([path], n_boot=20)


def test_an_edited_miou_no_longer_matches_its_counts(tmp_path: Path) -> None:
    path = rec_file(tmp_path, "r.json")
    data = json.loads(path.read_text())
    data["conditions"]["a"]["miou"] += 0.5
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=r"condition a: their totals give mIoU [\d.]+, the record [\d.]+"):
        read_per_image(path)


# ------------------------------------------------------------------------------------ one evaluation once
def test_the_same_record_given_twice_counts_once_and_says_so(tmp_path: Path) -> None:
    a = rec_file(tmp_path, "r.json")
    res = compare([a, a], n_boot=50)
    cell = res["cells"]["teacher", "emm"]
    assert cell.runs == 1 and cell.low < cell.value < cell.high  # a bootstrap, not a zero-width t interval
    assert res["duplicates_note"].startswith("1 duplicate evaluation counted once (same method, seed, checkpoint")
    assert "r.json given twice" in res["duplicates_note"]
    assert (cell.low, cell.high) == (compare([a], n_boot=50)["cells"]["teacher", "emm"].low,
                                     compare([a], n_boot=50)["cells"]["teacher", "emm"].high)
    md = runner.invoke(app, ["compare", str(a), str(a), "--format", "md", "--bootstrap", "50"])
    assert md.exit_code == 0 and "> 1 duplicate evaluation counted once" in md.stdout and "(n=" not in md.stdout
    csv = runner.invoke(app, ["compare", str(a), str(a), "--format", "csv", "--bootstrap", "50"])
    assert csv.exit_code == 0 and csv.stderr.startswith("rsbench: note: 1 duplicate evaluation counted once")
    assert ",1," in csv.stdout.splitlines()[1]
    table = runner.invoke(app, ["compare", str(a), str(a), "--bootstrap", "50"])
    assert table.exit_code == 0 and "1 duplicate evaluation" in table.stdout


def test_a_record_copied_into_two_folders_is_one_seed(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for s in (0, 1):
        rec_file(runs, f"s{s}.json", seed=s)
    shutil.copytree(runs, tmp_path / "store" / "teacher")
    rec_file(runs, "s2.json", seed=2)
    res = compare([tmp_path / "store", runs], n_boot=50)
    assert res["cells"]["teacher", "emm"].runs == 3
    note = res["duplicates_note"]
    assert note.startswith("2 duplicate evaluations counted once") and "; and 1 more" in note
    kept = {p.name for p in res["cells"]["teacher", "emm"].records}
    assert kept == {"s0.json", "s1.json", "s2.json"}
    # the first by path is kept, whatever the order of the arguments
    again = compare([runs, tmp_path / "store"], n_boot=50)
    assert again["cells"]["teacher", "emm"].records == res["cells"]["teacher", "emm"].records
    assert again["duplicates"] == res["duplicates"]


def test_records_without_a_checkpoint_hash_are_duplicates_when_their_numbers_are(tmp_path: Path) -> None:
    a = rec_file(tmp_path / "a", "r.json", sha=None, seed=None, iters=None)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    assert compare([tmp_path], n_boot=20)["cells"]["teacher", "emm"].runs == 1
    rec_file(tmp_path / "c", "r.json", sha=None, seed=None, iters=None, shift=30)  # other numbers, no seed
    with pytest.raises(ConfigError, match="both have no seed"):
        compare([tmp_path], n_boot=20)
    assert a.is_file()


# ------------------------------------------------------------------------------ one training per method
def _card(**changes) -> dict:
    """The committed deliver-synth teacher card of seed 0 (an earlier flat-loss-key card), changed."""
    path = next((REPO / "leaderboards/records/deliver-synth/teacher").glob("emm-s0-*.json"))
    return {**json.loads(path.read_text())["card"], **changes}


def test_records_of_different_training_under_one_method_are_refused_naming_both(tmp_path: Path) -> None:
    a = rec_file(tmp_path, "t-200.json", seed=0, iters=200, card=_card(seed=0))
    b = rec_file(tmp_path, "t-3600.json", seed=1, iters=3600, card=_card(seed=1))
    with pytest.raises(ConfigError) as err:
        compare([tmp_path], n_boot=20)
    msg = str(err.value)
    assert msg.startswith(f"records of method 'teacher' come from different training: {a} (card digest ")
    assert ", 200 iterations) and " in msg and f"{b} (card digest " in msg and ", 3600 iterations)" in msg
    assert msg.endswith("; pass --force to pool them")
    out = runner.invoke(app, ["compare", str(tmp_path), "--format", "csv"])
    assert out.exit_code == 2 and out.stdout == "" and out.stderr.count("\n") == 1
    assert out.stderr.startswith("rsbench: error: records of method 'teacher' come from different training")
    forced = compare([tmp_path], n_boot=20, force=True)
    assert forced["cells"]["teacher", "emm"].runs == 2 and "different training" in forced["note"]
    md = runner.invoke(app, ["compare", str(tmp_path), "--force", "--format", "md", "--bootstrap", "20"])
    assert md.exit_code == 0 and md.stdout.startswith("> records of method 'teacher' come from different training")


def test_a_different_card_is_different_training_but_its_seed_and_description_are_not(tmp_path: Path) -> None:
    rec_file(tmp_path / "ok", "s0.json", seed=0, card=_card(seed=0))
    rec_file(tmp_path / "ok", "s1.json", seed=1, card=_card(seed=1, description="reworded"))
    assert compare([tmp_path / "ok"], n_boot=20)["cells"]["teacher", "emm"].runs == 2
    rec_file(tmp_path / "lr", "s2.json", seed=2, card=_card(seed=2, lr=0.01))
    with pytest.raises(ConfigError, match=r"come from different training: .*lr/s2\.json \(card digest (\w+), 3600 "
                                          r"iterations\) and .*ok/s0\.json \(card digest (?!\1)\w+, 3600 iterations\)"):
        compare([tmp_path], n_boot=20)


def test_the_committed_teacher_seeds_are_one_training(tmp_path: Path) -> None:
    """Seed 2's saved card has other flat HPDM and RRM options (an earlier default), for losses the teacher does
    not train with: read as a card today they are gone, so the three seeds pool; the raw cards differ."""
    from rsbench.leaderboard.rules import training

    recs = [json.loads(p.read_text()) for p in
            sorted((REPO / "leaderboards/records/deliver-synth/teacher").glob("emm-s*.json"))]
    raw = {json.dumps({k: v for k, v in r["card"].items() if k != "seed"}, sort_keys=True) for r in recs}
    assert len(recs) == 3 and len(raw) == 2
    assert len({training(r) for r in recs}) == 1 and training(recs[0])[1] == 3600


def test_weights_records_are_hashed_as_their_options(tmp_path: Path) -> None:
    opts = {"model": "cmnext_mit_test", "eval_size": None}
    a = rec_file(tmp_path, "a.json", method="weights:x", seed=None, iters=None, card=opts, method_digest=None)
    shutil.copyfile(a, tmp_path / "copy.json")
    shutil.copyfile(a.with_suffix(".npz"), tmp_path / "copy.npz")
    data = json.loads((tmp_path / "copy.json").read_text())
    data["per_image"] = "copy.npz"
    (tmp_path / "copy.json").write_text(json.dumps(data))
    assert compare([tmp_path], n_boot=20)["cells"]["weights:x", "emm"].runs == 1  # one file, twice
    rec_file(tmp_path, "b.json", method="weights:x", seed=None, iters=None, card={**opts, "eval_size": 64},
             method_digest=None, sha="b" * 64)
    with pytest.raises(ConfigError, match=r"'weights:x' come from different training: .*a\.json \(card digest \w+, "
                                          r"iterations unknown\) and .*b\.json"):
        compare([tmp_path], n_boot=20)


# ------------------------------------------------------------------------------------------ distinct seeds
def test_one_seed_twice_with_different_checkpoints_is_refused(tmp_path: Path) -> None:
    a = rec_file(tmp_path, "a.json", seed=0, sha="a" * 64)
    b = rec_file(tmp_path, "b.json", seed=0, sha="b" * 64, shift=30)
    rec_file(tmp_path, "c.json", seed=1)
    with pytest.raises(ConfigError) as err:
        compare([tmp_path], n_boot=20)
    assert str(err.value) == (f"records of method 'teacher' under protocol 'emm' both have seed 0: {a} (checkpoint "
                              f"aaaaaaaa, protocol digest def) and {b} (checkpoint bbbbbbbb, protocol digest def); "
                              "seeds must be distinct; pass --force to pool them")
    forced = compare([tmp_path], n_boot=20, force=True)
    assert forced["cells"]["teacher", "emm"].runs == 3 and "seeds must be distinct" in forced["note"]


def test_one_checkpoint_under_two_protocol_digests_is_not_two_seeds(tmp_path: Path) -> None:
    rec_file(tmp_path, "a.json", seed=0, sha="a" * 64)
    rec_file(tmp_path, "b.json", seed=0, sha="a" * 64, protocol_digest="other")
    with pytest.raises(ConfigError, match=r"both have seed 0: .*a\.json \(checkpoint aaaaaaaa, protocol digest def\) "
                                          r"and .*b\.json \(checkpoint aaaaaaaa, protocol digest other\)"):
        compare([tmp_path], n_boot=20)


def test_distinct_seeds_of_one_training_pool_with_a_t_interval(tmp_path: Path) -> None:
    for s in range(3):
        rec_file(tmp_path, f"t{s}.json", seed=s, card=_card(seed=s))
        rec_file(tmp_path, f"r{s}.json", method="robustseg", seed=s, shift=20)
    res = compare([tmp_path], baseline="teacher", n_boot=50)
    assert res["note"] is None and res["duplicates_note"] is None and res["duplicates"] == []
    assert res["cells"]["teacher", "emm"].runs == res["cells"]["robustseg", "emm"].runs == 3
    assert res["cells"]["robustseg", "emm"].delta == pytest.approx(1.0, abs=0.05)


# ------------------------------------------------------------------------------------------- the store
def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _lb(tmp_path: Path) -> Path:
    root = tmp_path / "lb"
    folder = root / "records" / "deliver-synth" / "teacher"
    for s in (0, 1):
        rec_file(folder, f"emm-s{s}.json", seed=s, card=_card(seed=s))
    return root


def test_build_counts_a_copied_record_once_and_says_so_deterministically(tmp_path: Path) -> None:
    from rsbench.leaderboard.store import build, build_with_notes

    root = _lb(tmp_path)
    folder = root / "records" / "deliver-synth" / "teacher"
    (folder / "old").mkdir()
    for suffix in (".json", ".npz"):
        shutil.copyfile(folder / f"emm-s0{suffix}", folder / "old" / f"emm-s0{suffix}")
    files, notes = build_with_notes(root, n_boot=50)
    assert build(root, n_boot=50) == files
    store = "records/deliver-synth/teacher"
    note = ("1 duplicate evaluation counted once (same method, seed, checkpoint, protocol digest, dataset, split and "
            f"convention): {store}/old/emm-s0.json repeats {store}/emm-s0.json")
    assert notes == [f"deliver-synth: {note}"]
    assert f"Note: {note}." in files["deliver-synth.md"] and "(n=2)" in files["deliver-synth.md"]
    assert ",2\n" in files["deliver-synth.csv"]
    out = runner.invoke(app, ["leaderboard", "build", "--root", str(root)])
    assert out.exit_code == 0 and "note: deliver-synth: 1 duplicate evaluation counted once" in out.stdout
    assert runner.invoke(app, ["leaderboard", "check", "--root", str(root)]).exit_code == 0


def test_build_refuses_a_store_that_pools_different_training(tmp_path: Path) -> None:
    root = _lb(tmp_path)
    rec_file(root / "records" / "deliver-synth" / "teacher", "emm-s2.json", seed=2, iters=200, card=_card(seed=2))
    before = _snapshot(root)
    out = runner.invoke(app, ["leaderboard", "build", "--root", str(root)])
    assert out.exit_code == 2 and "come from different training" in out.stderr and "200 iterations" in out.stderr
    assert _snapshot(root) == before


@pytest.mark.parametrize(("make", "message"), [
    (lambda d: rec_file(d, "new.json", seed=2, iters=200, card=_card(seed=2)),
     r"records of method 'teacher' come from different training: .*emm-s0\.json \(card digest \w+, 3600 iterations\) "
     r"and .*new\.json \(card digest \w+, 200 iterations\); the store pools a method's records as seeds"),
    (lambda d: rec_file(d, "new.json", seed=1, sha="c" * 64, card=_card(seed=1), shift=30),
     r"both have seed 1: .*emm-s1\.json \(checkpoint \w+, protocol digest def\) and .*new\.json \(checkpoint "
     r"cccccccc, protocol digest def\); seeds must be distinct; the store pools"),
    (lambda d: (p := rec_file(d, "new.json", seed=2, card=_card(seed=2)),
                shutil.copyfile(p.parent.parent / "lb" / "records" / "deliver-synth" / "teacher" / "emm-s0.npz",
                                p.with_suffix(".npz")))[0],
     r"new\.json: its per-image counts new\.npz are not the record's"),
])
def test_add_refuses_what_build_would_and_writes_nothing(tmp_path: Path, make, message: str) -> None:
    root = _lb(tmp_path)
    new = make(tmp_path / "runs")
    before = _snapshot(tmp_path)
    out = runner.invoke(app, ["leaderboard", "add", str(new), "--root", str(root)])
    assert out.exit_code == 2 and len(out.stderr.splitlines()) == 1, out.output
    assert re.search(message, out.stderr), out.stderr
    assert _snapshot(tmp_path) == before


def test_add_accepts_another_seed_of_the_same_training(tmp_path: Path) -> None:
    from rsbench.leaderboard.store import add

    root = _lb(tmp_path)
    new = rec_file(tmp_path / "runs", "new.json", seed=2, card=_card(seed=2, description="reworded"))
    (_, dest, status), = add([new], root)
    assert status == "added" and dest.with_suffix(".npz").is_file()
    assert add([new], root)[0][2] == "present"


# ---------------------------------------------------------------------------------------- reported.yaml
def _reported_root(tmp_path: Path, change) -> Path:
    import yaml

    root = tmp_path / "lb"
    root.mkdir()
    data = yaml.safe_load((REPO / "leaderboards" / "reported.yaml").read_text())
    change(data["entries"])
    (root / "reported.yaml").write_text(yaml.safe_dump(data))
    return root


def _entry(i: int, key: str, value) -> object:
    def change(entries: list) -> None:
        node = entries[i]
        *parents, last = key.split(".")
        for k in parents:  # copied: entries share their source and derived through YAML anchors
            node[k] = copy.deepcopy(node[k])
            node = node[k]
        if value is KeyError:
            del node[last]
        else:
            node[last] = value
    return change


@pytest.mark.parametrize(("change", "message"), [
    (_entry(0, "values.emm", float("nan")), r"entry 0 \(CMNeXt, deliver\): field 'values.emm' is nan, not a finite"),
    (_entry(2, "values.rmm-75", float("inf")), r"entry 2 \(MAGIC, deliver\): field 'values.rmm-75' is inf"),
    (_entry(5, "values.emm", "19.3"), r"entry 5 \(CMX, muses\): field 'values.emm' is '19.3', not a finite number"),
    (_entry(5, "values", {}), r"entry 5 \(CMX, muses\): field 'values' is not a non-empty mapping"),
    (_entry(1, "source", KeyError), r"entry 1 \(GeminiFusion, deliver\) lacks source"),
    (_entry(1, "source.table", None), r"entry 1 \(GeminiFusion, deliver\): field 'source' needs a paper and a table"),
    (_entry(0, "released", "cmnext_b2_delivr_rgbdel"), r"entry 0 \(CMNeXt, deliver\): field 'released' is "
                                                       r"'cmnext_b2_delivr_rgbdel', not a released checkpoint"),
    (_entry(0, "released", "cmnext_b2_mcubes_rgbadn"), r"field 'released' names cmnext_b2_mcubes_rgbadn, a checkpoint "
                                                       r"for mcubes"),
    (_entry(0, "derived.keys", ["emm:missing-9"]), r"field 'derived.keys' names emm:missing-9, not among"),
    (_entry(0, "derived.how", " "), r"field 'derived.how' is not text"),
    (_entry(0, "derived", {"keys": ["emm"]}), r"field 'derived' needs exactly keys .* and how"),
    (_entry(3, "relased", None), r"entry 3 \(MAGIC\+\+, deliver\): field 'relased' is not an entry field"),
    (_entry(3, "resolution", -1), r"field 'resolution' is -1, not a positive size or null"),
    (_entry(3, "model", 7), r"field 'model' is not a name"),
])
def test_reported_yaml_is_validated_with_one_line_naming_file_and_entry(tmp_path: Path, change, message: str) -> None:
    from rsbench.leaderboard.store import _reported

    root = _reported_root(tmp_path, change)
    prefix = "" if message.startswith("entry") else r"entry \d+ \([^)]*\): "
    with pytest.raises(ConfigError, match=r"lb/reported\.yaml: " + prefix + message):
        _reported(root)
    before = _snapshot(root)
    out = runner.invoke(app, ["leaderboard", "build", "--root", str(root)])
    assert out.exit_code == 2 and len(out.stderr.splitlines()) == 1 and "reported.yaml: entry" in out.stderr
    assert _snapshot(root) == before


def test_reported_yaml_that_is_not_yaml_is_one_line(tmp_path: Path) -> None:
    from rsbench.leaderboard.store import _reported

    root = tmp_path / "lb"
    root.mkdir()
    (root / "reported.yaml").write_text("entries:\n  - {model: X, dataset: deliver\n")
    with pytest.raises(ConfigError, match=r"reported\.yaml: not valid YAML at line \d+"):
        _reported(root)
    (root / "reported.yaml").write_text("entries: 3\n")
    with pytest.raises(ConfigError, match=r"reported\.yaml: expected a mapping with a list 'entries'"):
        _reported(root)


def test_the_committed_reported_yaml_is_valid() -> None:
    from rsbench.leaderboard.store import _reported

    entries = _reported(REPO / "leaderboards")
    assert len(entries) == 10 and sum(bool(e.get("released")) for e in entries) == 1
    assert sum(bool(e.get("derived")) for e in entries) == 3
