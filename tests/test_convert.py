"""convert-dataset: exact accounting, every input layout and format, atomic output, the CLI."""

from __future__ import annotations

import gzip
import json
import os
import re
import stat
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import yaml
from datasets import Dataset, DatasetDict
from typer.testing import CliRunner

from axolotl_aot.integration.records import iter_records
from axolotl_aot.tools.convert import convert_dataset
from axolotl_aot_cli.app import app

USER = {"role": "user", "content": "hi"}
USER_P1 = {"role": "user", "content": "p1"}


def answer(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


HH_PROMPT = "\n\nHuman: a\n\nAssistant: b\n\nHuman: what color is the sky?\n\nAssistant:"

GOOD = [
    {"prompt": "p1", "chosen": "a", "rejected": "b"},
    {"system": "be brief", "question": "q2", "chosen": "yes", "rejected": "no"},
    {
        "prompt": "hi",
        "chosen": [USER, {"role": "assistant", "content": "A"}],
        "rejected": [USER, {"role": "assistant", "content": "B"}],
    },
    {
        "prompt": [USER],
        "chosen": [{"role": "assistant", "content": "A"}],
        "rejected": [{"role": "assistant", "content": "C"}],
    },
    {"chosen": "\n\nHuman: hi\n\nAssistant: hello there", "rejected": "\n\nHuman: hi\n\nAssistant: go away"},
    {"chosen": HH_PROMPT + " The sky is blue", "rejected": HH_PROMPT + " The sky is green"},
]
BAD = [
    ({"prompt": "p", "chosen": "a"}, "missing field: rejected"),
    ({"prompt": "p", "chosen": "  ", "rejected": "b"}, "empty completion"),
    ({"prompt": "p", "chosen": "a", "rejected": "a"}, "chosen identical to rejected"),
    ({"prompt": "p", "chosen": 3, "rejected": "b"}, "wrong type: chosen is int, rejected is str"),
    ('{"prompt": "p", "chosen": ', "undecodable line"),
    (
        {
            "chosen": [USER, {"role": "assistant", "content": ""}],
            "rejected": [USER, {"role": "assistant", "content": "x"}],
        },
        "empty completion",
    ),
    (
        {"chosen": "x", "rejected": "y"},
        "missing field: prompt (no prompt or question column, and not a Human/Assistant transcript)",
    ),
    ("[1, 2]", "wrong type: row is list, not an object"),
    ({"prompt": "", "chosen": "a", "rejected": "b"}, "empty prompt"),
]


def write_mixed(path: Path) -> Path:
    """Good and bad rows of every layout, interleaved."""
    lines = []
    for i in range(max(len(GOOD), len(BAD))):
        for rows in (GOOD, [row for row, _ in BAD]):
            if i < len(rows):
                lines.append(rows[i] if isinstance(rows[i], str) else json.dumps(rows[i]))
    path.write_text("\n".join(lines) + "\n")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_accounting_is_exact_on_a_file_mixing_every_layout(tmp_path):
    src = write_mixed(tmp_path / "mixed.jsonl")
    stats = convert_dataset(src, tmp_path / "out.jsonl", rejects=tmp_path / "rejects.jsonl")
    assert stats.rows_read == len(GOOD) + len(BAD) == stats.pairs_converted + stats.rows_dropped
    assert stats.pairs_converted == len(GOOD)
    assert stats.dropped == Counter(reason for _, reason in BAD)
    assert stats.layouts == Counter({"prompt": 2, "chat": 2, "hh": 2})
    rows = read_jsonl(tmp_path / "out.jsonl")
    assert len(rows) == stats.rows_written == 2 * len(GOOD)
    assert (stats.positives_written, stats.negatives_written) == (len(GOOD), len(GOOD))
    by_pair = {}
    for row in rows:
        by_pair.setdefault(row["pair_id"], {})[row["label"]] = row
    assert len(by_pair) == len(GOOD)
    pairs = [by_pair[k] for k in sorted(by_pair)]
    # Chat rows share the file, so string rows are written as chat too (one column type per column).
    assert pairs[0][True] == {"prompt": [USER_P1], "completion": [answer("a")], "label": True, "pair_id": 0}
    assert pairs[1][False] == {
        "prompt": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "q2"}],
        "completion": [answer("no")],
        "label": False,
        "pair_id": 2,
    }
    assert pairs[2][True]["prompt"] == [USER] and pairs[2][True]["completion"] == [answer("A")]
    assert pairs[3][False]["prompt"] == [USER] and pairs[3][False]["completion"] == [answer("C")]
    assert pairs[4][True]["prompt"] == [USER] and pairs[4][False]["completion"] == [answer("go away")]
    assert pairs[5][True]["prompt"] == [
        {"role": "user", "content": "a"},
        answer("b"),
        {"role": "user", "content": "what color is the sky?"},
    ]
    assert pairs[5][True]["completion"] == [answer("The sky is blue")]
    assert stats.dataset_type == "axolotl_aot_chat.unpaired"
    rejects = read_jsonl(tmp_path / "rejects.jsonl")
    assert Counter(r["reason"].split(":")[0] for r in rejects) == Counter(r.split(":")[0] for _, r in BAD)
    undecodable = next(r for r in rejects if r["reason"].startswith("undecodable"))
    assert undecodable["data"] == '{"prompt": "p", "chosen": ' and undecodable["line"] == 10


@pytest.mark.parametrize("kind", ["json", "parquet", "csv", "disk", "disk-split"])
def test_every_input_format_gives_the_same_rows(tmp_path, kind):
    rows = [{"prompt": f"p{i}", "chosen": f"c{i}", "rejected": f"r{i}"} for i in range(5)]
    if kind == "json":
        src = tmp_path / "in.json"
        src.write_text(json.dumps(rows))
    elif kind == "parquet":
        src = tmp_path / "in.parquet"
        pd.DataFrame(rows).to_parquet(src)
    elif kind == "csv":
        src = tmp_path / "in.csv"
        pd.DataFrame(rows).to_csv(src, index=False)
    else:
        src = tmp_path / "in"
        data = Dataset.from_list(rows)
        (
            DatasetDict({"train": data, "test": data.select([0])}) if kind == "disk-split" else data
        ).save_to_disk(src)
    stats = convert_dataset(src, tmp_path / "out.parquet", split="train" if kind == "disk-split" else None)
    assert stats.pairs_converted == 5 and stats.rows_dropped == 0
    out = pd.read_parquet(tmp_path / "out.parquet").to_dict("records")
    assert out[:2] == [
        {"prompt": "p0", "completion": "c0", "label": True, "pair_id": 0},
        {"prompt": "p0", "completion": "r0", "label": False, "pair_id": 0},
    ]
    assert len(out) == 10


def test_a_folder_with_several_splits_needs_split(tmp_path):
    data = Dataset.from_list([{"prompt": "p", "chosen": "a", "rejected": "b"}])
    DatasetDict({"train": data, "test": data}).save_to_disk(tmp_path / "in")
    with pytest.raises(ValueError, match="has splits train, test; choose one with --split"):
        convert_dataset(tmp_path / "in", tmp_path / "out.jsonl")
    with pytest.raises(ValueError, match="no split 'dev'; it has train, test"):
        convert_dataset(tmp_path / "in", tmp_path / "out.jsonl", split="dev")


def test_dedupe_balance_seed_and_limit(tmp_path):
    shared = [{"prompt": "p", "chosen": "best", "rejected": f"bad{i}"} for i in range(4)]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in [*shared, *shared[:1]]))
    deduped = convert_dataset(src, tmp_path / "d.jsonl", dedupe=True)
    # 5 pairs -> 10 rows; "best" appears 5 times (4 duplicates), the 5th pair repeats bad0 once.
    assert (deduped.duplicates_removed, deduped.positives_written, deduped.negatives_written) == (5, 1, 4)
    balanced = convert_dataset(src, tmp_path / "b.jsonl", dedupe=True, balance=True, seed=1)
    assert (balanced.positives_written, balanced.negatives_written, balanced.balanced_away) == (1, 1, 3)
    assert Counter(r["label"] for r in read_jsonl(tmp_path / "b.jsonl")) == Counter({True: 1, False: 1})
    plain = read_jsonl(tmp_path / "d.jsonl")
    convert_dataset(src, tmp_path / "s1.jsonl", dedupe=True, seed=7)
    convert_dataset(src, tmp_path / "s2.jsonl", dedupe=True, seed=7)
    shuffled = read_jsonl(tmp_path / "s1.jsonl")
    assert shuffled == read_jsonl(tmp_path / "s2.jsonl") and shuffled != plain
    assert sorted(map(json.dumps, shuffled)) == sorted(map(json.dumps, plain))
    limited = convert_dataset(src, tmp_path / "l.jsonl", limit=2)
    assert (limited.rows_read, limited.rows_written, limited.limit_reached) == (2, 4, True)


def test_strict_and_overwrite_protect_existing_data(tmp_path):
    src = write_mixed(tmp_path / "mixed.jsonl")
    dst = tmp_path / "out.jsonl"
    with pytest.raises(ValueError, match=r"--strict: 9 of 15 rows would be dropped \(2 empty completion"):
        convert_dataset(src, dst, strict=True)
    assert not dst.exists()
    dst.write_text("precious\n")
    with pytest.raises(FileExistsError, match=r"out\.jsonl exists; pass --overwrite to replace it"):
        convert_dataset(src, dst)
    assert dst.read_text() == "precious\n"
    convert_dataset(src, dst, overwrite=True)
    assert len(read_jsonl(dst)) == 12
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".aot-convert-")] == []


def test_an_interrupted_run_leaves_no_partial_output(tmp_path):
    src = write_mixed(tmp_path / "mixed.jsonl")

    def interrupt(count: int) -> None:
        if count == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        convert_dataset(src, tmp_path / "out.jsonl", on_row=interrupt)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mixed.jsonl"]


def test_forced_format_drops_rows_of_other_layouts(tmp_path):
    stats = convert_dataset(write_mixed(tmp_path / "mixed.jsonl"), tmp_path / "out.jsonl", layout="chat")
    assert stats.pairs_converted == 2
    # The layout is recognised before the content is checked: 2 good and 3 bad prompt rows.
    assert stats.dropped["wrong type: a prompt row, but --format chat"] == 5
    assert stats.dropped["wrong type: a hh row, but --format chat"] == 3


runner = CliRunner()


def test_cli_happy_path_and_json(tmp_path):
    src = write_mixed(tmp_path / "mixed.jsonl")
    result = runner.invoke(app, ["convert-dataset", str(src), str(tmp_path / "out.jsonl")])
    assert result.exit_code == 0, result.output
    for text in ("input rows read", "15", "dropped: undecodable line (first: line 10)", "rows written", "12"):
        assert text in " ".join(result.output.split())
    result = runner.invoke(app, ["convert-dataset", str(src), str(tmp_path / "o2.jsonl"), "--json"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["rows_read"] == data["pairs_converted"] + data["rows_dropped"] == 15
    assert data["first_dropped_rows"]["undecodable line"] == "line 10"  # 1-based, as an editor counts


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["missing.jsonl", "out.jsonl"], 1, "missing.jsonl: no such file or folder"),
        (["in[v2]/missing.jsonl", "out.jsonl"], 1, "in[v2]/missing.jsonl: no such file or folder"),
        (["mixed.jsonl", "out.txt"], 1, "the output format follows its extension: use .jsonl or .parquet"),
        (["mixed.jsonl", "out.jsonl", "--format", "xml"], 2, "must be one of auto, prompt, chat, hh"),
        (["mixed.jsonl", "out.jsonl", "--strict"], 1, "--strict: 9 of 15 rows would be dropped"),
        (["mixed.jsonl", "mixed.jsonl", "--overwrite"], 1, "DST mixed.jsonl is the source file"),
        (
            ["mixed.jsonl", "out.jsonl", "--rejects", "./mixed.jsonl"],
            1,
            "--rejects mixed.jsonl is the source",
        ),
        (["mixed.jsonl", "o.jsonl", "--rejects", "o.jsonl"], 1, "--rejects o.jsonl is the output file too"),
        (["mixed.jsonl", "out.jsonl", "--column", "chosen"], 2, "is not FIELD=COLUMN"),
        (["mixed.jsonl", "out.jsonl", "--limit", "0"], 2, "--limit"),
    ],
)
def test_cli_bad_input_exit_codes(tmp_path, monkeypatch, args, code, message):
    write_mixed(tmp_path / "mixed.jsonl")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["convert-dataset", *args])
    assert result.exit_code == code, result.output
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_installed_executable(tmp_path):
    src = write_mixed(tmp_path / "mixed.jsonl")
    done = subprocess.run(
        [Path(sys.executable).parent / "aot-cli", "convert-dataset", src, tmp_path / "out.jsonl", "--json"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rows_written"] == 12


# --- No data loss: every destination that would lose data is refused before a row is read ---

PAIRS = [{"prompt": f"p{i}", "chosen": f"c{i}", "rejected": f"r{i}"} for i in range(3)]


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_source_and_rejects_are_never_overwritten(tmp_path, monkeypatch):
    src = write_rows(tmp_path / "pairs.jsonl", PAIRS)
    before = src.read_bytes()
    (tmp_path / "link.jsonl").symlink_to(src)
    monkeypatch.chdir(tmp_path)
    for dst, rejects, message in [
        ("./pairs.jsonl", None, "DST pairs.jsonl is the source file"),
        ("link.jsonl", None, "DST link.jsonl is the source file"),
        ("out.jsonl", "pairs.jsonl", "--rejects pairs.jsonl is the source file"),
        ("out.jsonl", "./out.jsonl", "--rejects out.jsonl is the output file too"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            convert_dataset("pairs.jsonl", dst, rejects=rejects, overwrite=True)
    assert src.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.jsonl", "pairs.jsonl"]


def test_a_folder_or_an_uncreatable_parent_fails_before_converting(tmp_path):
    src = write_rows(tmp_path / "pairs.jsonl", PAIRS)
    (tmp_path / "out.jsonl").mkdir()
    (tmp_path / "file").write_text("x")
    read = []
    for dst, message in [
        (tmp_path / "out.jsonl", "is a folder: give a file name"),
        (tmp_path / "file" / "sub" / "out.jsonl", "cannot create the folder"),
    ]:
        with pytest.raises(ValueError, match=message):
            convert_dataset(src, dst, overwrite=True, on_row=read.append)
    assert read == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "out.jsonl", "pairs.jsonl"]


@pytest.mark.parametrize(
    ("rows", "options", "reason", "hint"),
    [
        (
            [{"prompt": "p", "completion": "c", "label": True}] * 4,
            {},
            "4 missing field: chosen",
            "the rows are already unpaired (prompt, completion, label)",
        ),
        (
            [{"instruction": "p", "chosen_response": "a", "rejected_response": "b"}] * 3,
            {},
            "3 missing field: chosen",
            "--column chosen=chosen_response --column rejected=rejected_response",
        ),
        (PAIRS, {"layout": "chat"}, "3 wrong type: a prompt row, but --format chat", "drop --format"),
        ([], {}, "the source is empty", ""),
    ],
)
def test_a_conversion_without_pairs_writes_nothing_and_says_why(tmp_path, rows, options, reason, hint):
    src = write_rows(tmp_path / "in.jsonl", rows)
    with pytest.raises(ValueError, match=re.escape(reason)) as error:
        convert_dataset(src, tmp_path / "out.jsonl", rejects=tmp_path / "rej.jsonl", **options)
    assert hint in str(error.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]


def test_column_mapping_converts_the_argilla_layout(tmp_path):
    rows = [
        {"instruction": f"q{i}", "chosen_response": f"a{i}", "rejected_response": f"b{i}"} for i in range(3)
    ]
    columns = {"chosen": "chosen_response", "rejected": "rejected_response", "prompt": "instruction"}
    stats = convert_dataset(write_rows(tmp_path / "in.jsonl", rows), tmp_path / "out.jsonl", columns=columns)
    assert (stats.rows_read, stats.pairs_converted, stats.rows_dropped) == (3, 3, 0)
    assert read_jsonl(tmp_path / "out.jsonl")[5] == {
        "prompt": "q2",
        "completion": "b2",
        "label": False,
        "pair_id": 2,
    }


def test_parquet_has_every_column_of_every_row(tmp_path, monkeypatch):
    monkeypatch.setattr(
        "axolotl_aot.tools.convert.PARQUET_BATCH", 2
    )  # the system column starts in a later batch
    rows = [*PAIRS, {"system": "be brief", "prompt": "p3", "chosen": "c3", "rejected": "r3"}]
    stats = convert_dataset(write_rows(tmp_path / "in.jsonl", rows), tmp_path / "out.parquet")
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert len(out) == stats.rows_written == 8
    assert list(out.columns) == ["prompt", "completion", "label", "pair_id", "system"]
    assert out["system"].isna().tolist() == [True] * 6 + [False] * 2
    assert out["system"].iloc[7] == "be brief"


def test_parquet_of_chat_and_string_rows_is_all_chat(tmp_path):
    rows = [*PAIRS, {"chosen": [USER, answer("A")], "rejected": [USER, answer("B")]}]
    stats = convert_dataset(write_rows(tmp_path / "in.jsonl", rows), tmp_path / "out.parquet")
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert len(out) == stats.rows_written == 8 and stats.dataset_type == "axolotl_aot_chat.unpaired"
    assert list(out["prompt"].iloc[0]) == [USER_P0]
    assert out["completion"].iloc[7][0]["content"] == "B"


USER_P0 = {"role": "user", "content": "p0"}


@pytest.mark.parametrize("kind", ["jsonl", "json", "csv", "jsonl.gz", "json.gz"])
def test_byte_order_marks_and_gzip_lose_no_row(tmp_path, kind):
    if kind.startswith("jsonl"):
        text = "".join(json.dumps(row) + "\n" for row in PAIRS)
    elif kind.startswith("json"):
        text = json.dumps(PAIRS)
    else:
        text = pd.DataFrame(PAIRS).to_csv(index=False)
    data = ("\ufeff" + text).encode()
    src = tmp_path / f"in.{kind}"
    src.write_bytes(gzip.compress(data) if kind.endswith(".gz") else data)
    stats = convert_dataset(src, tmp_path / "out.jsonl")
    assert (stats.rows_read, stats.pairs_converted, stats.rows_dropped) == (3, 3, 0)
    assert read_jsonl(tmp_path / "out.jsonl")[0] == {
        "prompt": "p0",
        "completion": "c0",
        "label": True,
        "pair_id": 0,
    }


def test_a_lone_surrogate_drops_its_row_only(tmp_path):
    src = tmp_path / "in.jsonl"
    lines = [json.dumps(row) for row in PAIRS]
    lines.insert(1, '{"prompt": "bad \\ud800", "chosen": "a", "rejected": "b"}')
    lines.insert(1, "")  # a blank line: counted, as an editor counts lines
    src.write_text("\n".join(lines) + "\n")
    stats = convert_dataset(src, tmp_path / "out.jsonl", rejects=tmp_path / "rej.jsonl")
    assert (stats.rows_read, stats.pairs_converted, stats.rows_written) == (4, 3, 6)
    assert stats.dropped == Counter({"unencodable text": 1}) and stats.first_rows == {
        "unencodable text": "line 3"
    }
    (reject,) = read_jsonl(tmp_path / "rej.jsonl")
    assert reject["line"] == 3 and "'\\ud800' is a lone UTF-16 surrogate" in reject["reason"]
    assert reject["data"]["prompt"] == "bad \ud800"


def test_outputs_get_the_umask_mode(tmp_path):
    src = write_rows(tmp_path / "in.jsonl", [*PAIRS, {"prompt": "p"}])
    old = os.umask(0o027)
    try:
        convert_dataset(src, tmp_path / "a.jsonl", rejects=tmp_path / "r.jsonl")
        convert_dataset(src, tmp_path / "b.parquet", seed=1)
    finally:
        os.umask(old)
    modes = {
        name: stat.S_IMODE((tmp_path / name).stat().st_mode) for name in ("a.jsonl", "r.jsonl", "b.parquet")
    }
    assert modes == {"a.jsonl": 0o640, "r.jsonl": 0o640, "b.parquet": 0o640}


@pytest.mark.parametrize(
    ("rows", "dataset_type"),
    [
        (PAIRS, "chatml.prompt_pairs"),
        ([{"chosen": [USER, answer("A")], "rejected": [USER, answer("B")]}], "axolotl_aot_chat.unpaired"),
        ([{"chosen": "\n\nHuman: hi\n\nAssistant: yes", "rejected": "\n\nHuman: hi\n\nAssistant: no"}], None),
    ],
)
def test_cli_ends_with_the_datasets_entry_and_json_carries_the_type(
    tmp_path, monkeypatch, rows, dataset_type
):
    write_rows(tmp_path / "in.jsonl", rows)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["convert-dataset", "in.jsonl", "out/data[v2].jsonl"])
    assert result.exit_code == 0, result.output
    assert "in.jsonl -> out/data[v2].jsonl" in result.output
    snippet = result.output[result.output.index("datasets:") :]
    entry = {"path": "out/data[v2].jsonl", "split": "train"} | (
        {"type": dataset_type} if dataset_type else {}
    )
    assert yaml.safe_load(snippet) == {"datasets": [entry]}
    result = runner.invoke(app, ["convert-dataset", "in.jsonl", "o.jsonl", "--json"])
    assert json.loads(result.stdout)["dataset_type"] == dataset_type


def test_cli_exit_code_1_when_no_pair(tmp_path, monkeypatch):
    write_rows(tmp_path / "in.jsonl", [{"prompt": "p", "completion": "c", "label": True}])
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["convert-dataset", "in.jsonl", "out.jsonl"])
    assert result.exit_code == 1
    assert (
        "no pair converted from 1 row(s): 1 missing field: chosen; the rows are already unpaired"
        in " ".join(result.output.split())
    )
    assert not (tmp_path / "out.jsonl").exists()


def test_rows_are_named_by_their_1_based_line_or_row(tmp_path):
    jsonl_file = tmp_path / "in.jsonl"
    jsonl_file.write_text('{"a": 1}\n\n{"a": 2}\n')  # a blank line, counted as an editor counts it
    csv_file = tmp_path / "in.csv"
    csv_file.write_text('a,b\n1,"two\nlines"\n3,4\n')  # a header, and a cell spanning two lines
    parquet_file = tmp_path / "in.parquet"
    pd.DataFrame({"a": [1, 2]}).to_parquet(parquet_file)
    assert [r.place for r in iter_records(jsonl_file)] == ["line 1", "line 3"]
    assert [r.place for r in iter_records(csv_file)] == ["line 2", "line 4"]  # where each row starts
    assert [r.place for r in iter_records(parquet_file)] == ["row 1", "row 2"]
