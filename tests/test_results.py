"""Result records: schema 2, the validator, the schema-1 reader, unique names, never rewritten."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from rsbench.errors import ConfigError
from rsbench.results import SCHEMA_VERSION, default_record_name, read_record, validate_record, write_record


def minimal_record() -> dict:
    return {
        "schema": SCHEMA_VERSION, "kind": "evaluation", "method": "teacher", "method_digest": "abc",
        "protocol": "emm", "protocol_digest": "def", "checkpoint_sha256": "0" * 64, "dataset": "deliver-synth",
        "split": "val", "data_fingerprint": "f" * 16, "synthetic": True, "resolution": None,
        "convention": "nanmean", "fill": "zero", "modalities": ["a", "b"],
        "summary": {"full": 50.0, "avg": 40.0},
        "conditions": {"a+b": {"miou": 50.0, "per_class_iou": [50.0, None]},
                       "a": {"miou": 40.0, "per_class_iou": [40.0, None]}},
        "num_samples": 4, "per_image": None,
        "provenance": {"rsbench_version": "0.1.0", "torch_version": "2", "device": "cpu", "world_size": 1,
                       "wall_time_s": 1.0, "created": "2026-11-27T00:00:00+00:00"},
        "card": {}, "protocol_card": {},
    }


def test_record_names_are_unique_within_one_second() -> None:
    names = {default_record_name("emm", "val") for _ in range(50)}
    assert len(names) == 50 and all(n.startswith("emm-val-") and n.endswith(".json") for n in names)


def test_round_trip_and_never_rewritten(tmp_path: Path) -> None:
    path = write_record(minimal_record(), tmp_path / "r.json")
    assert read_record(path) == minimal_record()
    with pytest.raises(ConfigError, match="never rewritten"):
        write_record(minimal_record(), path)
    bad = minimal_record()
    bad["summary"]["avg"] = float("nan")
    with pytest.raises(ValueError):  # NaN is not valid JSON: records hold numbers or null
        write_record(bad, tmp_path / "nan.json")
    assert not (tmp_path / "nan.json").exists()


def _set(record: dict, dotted: str, value) -> dict:
    out = copy.deepcopy(record)
    *parents, last = dotted.split(".")
    node = out
    for p in parents:
        node = node[p]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return out


@pytest.mark.parametrize(("dotted", "value", "field"), [
    ("dataset", KeyError, "'dataset' is missing"),
    ("schema", 3, "'schema' is 3"),
    ("synthetic", "yes", "'synthetic' has type str"),
    ("num_samples", True, "'num_samples' has type bool"),
    ("summary.avg", "40", "'summary.avg' is not a number"),
    ("conditions", {}, "'conditions' is empty"),
    ("conditions.a.miou", None, "'conditions.a.miou' is not a number"),
    ("conditions.a.per_class_iou", ["x"], "'conditions.a.per_class_iou'"),
    ("provenance.device", KeyError, "'provenance.device' is missing"),
    ("checkpoint_sha256", 12, "'checkpoint_sha256' has type int"),
])
def test_validator_names_the_file_and_field(tmp_path: Path, dotted: str, value, field: str) -> None:
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(_set(minimal_record(), dotted, value)))
    with pytest.raises(ConfigError, match=f"broken.json: field {field}"):
        read_record(path)


def test_schema_1_records_are_read_as_schema_2(tmp_path: Path) -> None:
    v1 = {"schema": 1, "kind": "evaluation", "method": "teacher", "dataset": "deliver-synth", "split": "val",
          "protocol": "all-subsets", "fill": "zero", "convention": "nanmean", "modalities": ["a", "b"],
          "summary": {"full": 50.0}, "subsets": {"a+b": {"miou": 50.0, "per_class_iou": [50.0]}},
          "num_samples": 4,
          "provenance": {"rsbench_version": "0.1.0", "torch_version": "2", "device": "cpu", "wall_time_s": 1.0,
                         "created": "x", "checkpoint_sha256": "a" * 64, "card_digest": "c", "data_fingerprint": "f"},
          "card": {"eval_size": None}}
    path = tmp_path / "v1.json"
    path.write_text(json.dumps(v1))
    rec = read_record(path)
    assert rec["schema"] == 2 and rec["protocol"] == "emm" and rec["conditions"] == v1["subsets"]
    assert (rec["checkpoint_sha256"], rec["method_digest"], rec["synthetic"]) == ("a" * 64, "c", True)
    validate_record(rec)
