from rlvr.verifier.extract import extract_code


def test_first_ocaml_block_is_taken():
    ex = extract_code("Here:\n```ocaml\nlet a = 1\n```\nand\n```ocaml\nlet b = 2\n```")
    assert ex.code == "let a = 1"
    assert ex.n_blocks == 2


def test_unlabelled_block_counts_as_ocaml():
    assert extract_code("```\nlet a = 1\n```").code == "let a = 1"


def test_foreign_language_block_is_skipped_for_the_ocaml_one():
    ex = extract_code("```python\nx = 1\n```\n```ocaml\nlet x = 1\n```")
    assert ex.code == "let x = 1"


def test_only_foreign_blocks_gives_no_code():
    assert extract_code("```python\nprint(1)\n```").code == ""


def test_no_fence_takes_the_whole_text():
    ex = extract_code("let f x = x + 1\n")
    assert ex.code == "let f x = x + 1"
    assert ex.fenced is False


def test_unclosed_final_fence_takes_the_text_after_it():
    ex = extract_code("Sure!\n```ocaml\nlet f x =\n  x + 1")
    assert ex.code == "let f x =\n  x + 1"
    assert ex.closed is False


def test_prose_after_the_last_fence_is_measured():
    ex = extract_code("```ocaml\nlet a = 1\n```\nThis works because addition is associative.")
    assert ex.prose_after == "This works because addition is associative."


def test_ml_tag_is_ocaml():
    assert extract_code("```ml\nlet a = 1\n```").code == "let a = 1"
