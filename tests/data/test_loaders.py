"""Loading every supported schema and file type; bad rows raise errors naming file, row and field."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rlvr.data import DataError, detect_schema, load_problems, load_sft_pairs, multipl_e_file

OURS = {
    "id": "double",
    "prompt": "(** [double x] is 2x. *)\nlet double (x : int) : int =",
    "tests": ["double 1 = 2", "double 0 = 0"],
    "solution": "let double x = 2 * x",
    "difficulty": "easy",
    "tags": ["arithmetic"],
    "split": "train",
}
KIRANPG = {
    "id": "k1",
    "prompt": "(** Return the list reversed; let xs be the input. *)\nlet rev_list (xs : int list) : int list =",
    "tests": 'let () =\n  assert (rev_list [1; 2] = [2; 1]);\n  assert (rev_list [] = []);\n  assert (rev_list ["a;b" |> String.length] = [3]);;',
}


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_our_schema(tmp_path):
    [p], report = load_problems(str(write_jsonl(tmp_path / "p.jsonl", [OURS])))
    assert (p.id, p.tests, p.split, p.tags, report.schema) == (
        "double",
        ("double 1 = 2", "double 0 = 0"),
        "train",
        ("arithmetic",),
        "ours",
    )


def test_kiranpg_test_block_is_split_into_assertions(tmp_path):
    [p], report = load_problems(str(write_jsonl(tmp_path / "k.jsonl", [KIRANPG])))
    assert report.schema == "kiranpg"
    assert p.tests == (
        "(rev_list [1; 2] = [2; 1])",
        "(rev_list [] = [])",
        '(rev_list ["a;b" |> String.length] = [3])',
    )
    assert p.signature.name == "rev_list"


def test_kiranpg_eval_schema_uses_problem_as_prompt(tmp_path):
    row = {"id": "e1", "problem": KIRANPG["prompt"], "tests": KIRANPG["tests"], "difficulty": "hard"}
    [p], report = load_problems(str(write_jsonl(tmp_path / "e.jsonl", [row])))
    assert (report.schema, p.split, p.difficulty) == ("kiranpg-eval", "eval", "hard")


def test_multipl_e_loads_offline_with_stop_tokens():
    problems, report = load_problems(str(multipl_e_file("mbpp-ml-fixed.jsonl")))
    assert report.schema == "multipl-e"
    assert len(problems) == 357
    p = problems[0]
    assert p.id == "mbpp_100_next_smallest_palindrome"
    assert p.tests[0] == "let candidate = next_smallest_palindrome in (((candidate 99) = 101))"
    assert p.extra["stop_tokens"] == ["\n\n", "\n(*", "\ntype", "\nlet"]


def test_csv_and_parquet_and_json(tmp_path):
    csv_path = tmp_path / "p.csv"
    csv_path.write_text(
        'id,prompt,tests\nk1,"'
        + KIRANPG["prompt"].replace('"', '""')
        + '","'
        + KIRANPG["tests"].replace('"', '""')
        + '"\n'
    )
    assert load_problems(str(csv_path))[0][0].tests[1] == "(rev_list [] = [])"
    pq_path = tmp_path / "p.parquet"
    pq.write_table(pa.Table.from_pylist([OURS]), pq_path)
    assert load_problems(str(pq_path))[0][0].tests == ("double 1 = 2", "double 0 = 0")
    json_path = tmp_path / "p.json"
    json_path.write_text(json.dumps([OURS]))
    assert load_problems(str(json_path))[0][0].id == "double"


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            {k: v for k, v in OURS.items() if k != "tests"},
            r"p.jsonl:1: field 'tests' is missing \(id double\)",
        ),
        ({**OURS, "tests": []}, r"p.jsonl:1: field 'tests' of double is empty"),
        (
            {**OURS, "prompt": "(** no signature *)"},
            r"p.jsonl:1: the prompt of double has no usable signature",
        ),
        ({**OURS, "id": "bad id!"}, r"p.jsonl:1: id 'bad id!' has characters outside"),
        (
            {**OURS, "split": "test"},
            r"p.jsonl:1: field 'split' is 'test' \(id double\); expected one of train, eval",
        ),
        (
            {**OURS, "tests": 'let () = print_endline "no asserts"'},
            r"p.jsonl:1: field 'tests' of double has no `assert`",
        ),
        ({"foo": 1}, r"p.jsonl:1: cannot use this row as a problem: expected fields id, prompt, tests"),
    ],
)
def test_bad_rows_name_the_file_row_and_field(tmp_path, row, message):
    with pytest.raises(DataError, match=message):
        load_problems(str(write_jsonl(tmp_path / "p.jsonl", [row])))


def test_duplicate_id_names_both_rows(tmp_path):
    with pytest.raises(DataError, match=r"p.jsonl:2: duplicate id 'double' \(first at row 1\)"):
        load_problems(str(write_jsonl(tmp_path / "p.jsonl", [OURS, OURS])))


def test_malformed_json_names_the_line(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps(OURS) + "\n{not json\n")
    with pytest.raises(DataError, match=r"p.jsonl:2: not valid JSON"):
        load_problems(str(path))


def test_skip_mode_counts_and_explains_skipped_rows(tmp_path):
    rows = [OURS, {**OURS, "id": "x", "tests": []}, OURS]
    problems, report = load_problems(str(write_jsonl(tmp_path / "p.jsonl", rows)), on_error="skip")
    assert [p.id for p in problems] == ["double"]
    assert len(report.skipped) == 2
    assert "2 skipped" in report.summary()


def test_split_filter(tmp_path):
    rows = [OURS, {**OURS, "id": "e", "split": "eval"}]
    assert [p.id for p in load_problems(str(write_jsonl(tmp_path / "p.jsonl", rows)), split="eval")[0]] == [
        "e"
    ]


def test_unreachable_hub_dataset_says_what_to_do():
    with pytest.raises(DataError, match="Offline\\? Use the bundled set"):
        load_problems("nobody/no-such-dataset-xyz")


def test_sft_pairs_come_from_the_train_split_only():
    pairs = load_sft_pairs("bundled")
    problems, _ = load_problems("bundled")
    eval_ids = {p.id for p in problems if p.split == "eval"}
    assert len(pairs) == sum(p.split == "train" for p in problems)
    assert not eval_ids & {pid for pid, _, _ in pairs}


def test_multipl_e_is_refused_for_training():
    with pytest.raises(DataError, match="evaluation only"):
        load_sft_pairs(str(multipl_e_file("mbpp-ml.jsonl")))


def test_schema_detection():
    assert detect_schema(OURS) == "ours"
    assert detect_schema(KIRANPG) == "kiranpg"
    assert detect_schema({"prompt": "x", "solution": "y"}) == "sft"
    assert detect_schema({"name": "n", "prompt": "p", "tests": "t"}) == "multipl-e"
