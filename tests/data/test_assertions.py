import json

import pytest

from rlvr.data import multipl_e_file
from rlvr.assertions import SplitError, split_assertions


def test_kiranpg_block():
    assert split_assertions("let () = assert (f 1 = 2); assert (f 2 = 3);;") == ["(f 1 = 2)", "(f 2 = 3)"]


def test_semicolons_and_asserts_inside_strings_and_lists_do_not_split():
    code = 'let () = assert (f "a; assert (b)" = [1; 2]); assert (g [|1; 2|] = {|x; y|})'
    assert split_assertions(code) == ['(f "a; assert (b)" = [1; 2])', "(g [|1; 2|] = {|x; y|})"]


def test_comments_are_ignored():
    assert split_assertions("(* assert false; *)\nlet () = assert (f 1) (* assert (g 2) *)") == ["(f 1)"]


def test_char_literals_with_brackets():
    assert split_assertions("let () = assert (f '(' = 1); assert (f ')' = 2)") == [
        "(f '(' = 1)",
        "(f ')' = 2)",
    ]


def test_block_without_double_semicolon():
    # the anchor project's harness broke on test blocks without `;;`
    assert split_assertions("let () =\n  assert (f 1 = 1);\n  assert (f 2 = 4)\n") == [
        "(f 1 = 1)",
        "(f 2 = 4)",
    ]


def test_begin_end_argument():
    assert split_assertions("let () = assert begin f 1 = 2 end") == ["begin f 1 = 2 end"]


def test_let_bindings_before_assertions_are_kept():
    assert split_assertions("let () = let xs = [1; 2] in assert (f xs = 3); assert (f [] = 0)") == [
        "let xs = [1; 2] in ((f xs = 3))",
        "let xs = [1; 2] in ((f [] = 0))",
    ]


def test_multipl_e_candidate_binding():
    row = json.loads(multipl_e_file("mbpp-ml.jsonl").read_text().splitlines()[0])
    assert (
        split_assertions(row["tests"])[0]
        == "let candidate = next_smallest_palindrome in (((candidate 99) = 101))"
    )


def test_no_assert_is_an_error():
    with pytest.raises(SplitError):
        split_assertions('let () = print_endline "hi"')
