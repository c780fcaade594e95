import pytest

from rlvr.verifier.ocaml_source import (
    SignatureError,
    defines_name,
    first_error,
    parse_signature,
    phrases_from_parsetree,
    strip_comments,
)


def test_signature_is_the_last_let_line():
    sig = parse_signature("(** doc *)\nlet helper x = x\nlet f (x : int) : int =")
    assert sig.name == "f"
    assert sig.line == "let f (x : int) : int ="


def test_let_in_prose_of_the_doc_comment_is_ignored():
    # The anchor project's unanchored regex picked "let x be ..." out of English prose.
    prompt = (
        "(** Compute the sum.\nlet x be the list and let total be ... *)\nlet sum (xs : int list) : int ="
    )
    sig = parse_signature(prompt)
    assert sig.name == "sum"
    assert "total" not in sig.line


def test_indented_let_in_a_comment_example_is_ignored():
    prompt = "(** Example:\n    let y = f 3 in y\n*)\nlet f (x : int) : int ="
    assert parse_signature(prompt).name == "f"


def test_prefix_keeps_type_definitions_and_drops_comments():
    sig = parse_signature('type t = A | B\n(** doc with "quote *)\nlet rec g (x : t) : int =')
    assert sig.prefix.strip() == "type t = A | B"
    assert sig.is_rec


def test_signature_must_end_with_equals():
    with pytest.raises(SignatureError, match="does not end with '='"):
        parse_signature("let f (x : int) : int")


def test_prompt_without_let_has_no_signature():
    with pytest.raises(SignatureError, match="no line starting with 'let'"):
        parse_signature("(** just words *)")


def test_multiline_signature():
    sig = parse_signature("let f (x : int)\n    (y : int) : int =")
    assert sig.name == "f"
    assert sig.line == "let f (x : int)\n    (y : int) : int ="


def test_defines_name_sees_full_definitions_only():
    assert defines_name("let rec f x = f x", "f")
    assert defines_name("let helper = 1\nand f x = x", "f")
    assert not defines_name("let f' = 3 in f' + x", "f")
    assert not defines_name("(* let f x = 1 *)\nx + 1", "f")
    assert not defines_name("let fx = 1 in fx", "f")


def test_strip_comments_keeps_strings_and_line_count():
    src = 'let s = "(* not a comment *)" (* a (* nested *) comment *)\nlet c = \'"\''
    out = strip_comments(src)
    assert '"(* not a comment *)"' in out
    assert "nested" not in out
    assert out.count("\n") == 1
    assert "'\"'" in out


def test_phrases_from_a_real_parsetree_dump():
    dump = (
        "[\n  structure_item (a.ml[1,0+0]..[1,0+9])\n    Pstr_value Nonrec\n    [\n      <def>\n"
        '        pattern (a.ml[1,0+4]..[1,0+5])\n          Ppat_var "x" (a.ml[1,0+4]..[1,0+5])\n'
        "        expression (a.ml[1,0+8]..[1,0+9])\n          Pexp_constant PConst_int (1,None)\n    ]\n]\n"
    )
    [p] = phrases_from_parsetree(dump)
    assert (p.start_line, p.end_line, p.start, p.end, p.names) == (1, 1, 0, 9, ("x",))


def test_first_error_classifies_syntax_and_type_errors():
    syntax = first_error('File "candidate.ml", line 2, characters 0-0:\nError: Syntax error\n')
    assert (syntax.file, syntax.line, syntax.kind) == ("candidate.ml", 2, "syntax")
    typ = first_error(
        'File "candidate.ml", line 1, characters 28-31:\n1 | let f x = x + "a"\n'
        "Error: This expression has type string but an expression was expected of type\n         int\n"
    )
    assert typ.kind == "type"
    assert typ.message == "Error: This expression has type string but an expression was expected of type int"
