"""Result records: unique names, atomic writes, never rewritten, schema checked on read."""

from __future__ import annotations

from pathlib import Path

import pytest

from rsbench.errors import ConfigError
from rsbench.results import default_record_name, read_record, write_record


def test_record_names_are_unique_within_one_second() -> None:
    names = {default_record_name("all-subsets", "val") for _ in range(50)}
    assert len(names) == 50 and all(n.startswith("all-subsets-val-") and n.endswith(".json") for n in names)


def test_records_are_never_rewritten_and_schema_is_checked(tmp_path: Path) -> None:
    path = write_record({"schema": 1, "summary": {"full": 50.0}}, tmp_path / "r.json")
    assert read_record(path)["summary"]["full"] == 50.0
    with pytest.raises(ConfigError, match="never rewritten"):
        write_record({"schema": 1}, path)
    (tmp_path / "old.json").write_text('{"schema": 0}')
    with pytest.raises(ConfigError, match="schema"):
        read_record(tmp_path / "old.json")
    with pytest.raises(ValueError):  # NaN is not valid JSON: records hold numbers or null
        write_record({"schema": 1, "x": float("nan")}, tmp_path / "nan.json")
    assert not (tmp_path / "nan.json").exists()
