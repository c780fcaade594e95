"""rlvr.examples: the examples a prompt states, and those a model may be shown (real verifier)."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from rlvr.data import load_problems, multipl_e_file
from rlvr.examples import MAX_EXAMPLES, doc_examples, visible_examples
from rlvr.problems import Problem
from rlvr.verifier import Verifier


@pytest.fixture(scope="module")
def verifier():
    with Verifier() as v:
        yield v


@pytest.fixture(scope="module")
def bundled():
    problems, _report = load_problems("bundled")
    return {p.id: p for p in problems}


def problem(prompt: str, solution: str | None = None, id: str = "t") -> Problem:
    return Problem(id=id, prompt=prompt, tests=("true",), solution=solution)


def examples(prompt: str) -> tuple[str, ...]:
    return doc_examples(problem(prompt))


SIG_ADD = "let add (x : int) (y : int) : int ="


# -- doc_examples: the forms ----------------------------------------------------------------------


def test_bundled_first_problems(bundled):
    assert doc_examples(bundled["lst_count_if"]) == (
        "count_if (fun x -> x > 2) [1; 5; 3; 2] = 2",
        "count_if (fun _ -> true) [] = 0",
    )
    assert doc_examples(bundled["lst_last_opt"]) == ("last [1; 2; 3] = Some 3", "last [] = None")
    # [k = 0], [k >= List.length xs]: equations, but not about the function
    assert doc_examples(bundled["lst_nth_from_end"]) == (
        "nth_from_end 0 [1; 2; 3] = Some 3",
        "nth_from_end 2 [1; 2; 3] = Some 1",
        "nth_from_end 3 [1; 2; 3] = None",
    )
    # a span across lines, with a string holding brackets and escapes
    assert doc_examples(bundled["lst_assoc_update"]) == (
        'assoc_update "b" 9 [("a", 1); ("b", 2); ("c", 3); ("b", 4)] = [("a", 1); ("b", 9); ("c", 3)]',
    )
    assert doc_examples(bundled["str_first_bracket_error"])[:2] == (
        'first_bracket_error "a(b[c]d)" = None',
        'first_bracket_error "([)]" = Some 2',
    )


def test_span_needs_the_name_and_a_top_level_equals():
    prompt = (
        "(** [dup xs] doubles every element of [xs]: for [[x; y]] it gives [[x; x; y; y]], and [Some x]\n"
        "    stays out of it, as do [dup xs <> xs], [dup (List.map (fun x -> x = 1) xs)] and [n >= 0].\n"
        "    Example: [dup [1; 2] = [1; 1; 2; 2]]. *)\n"
        "let dup (xs : 'a list) : 'a list ="
    )
    assert examples(prompt) == ("dup [1; 2] = [1; 1; 2; 2]",)
    assert examples("(** [f xs] sums [xs]. *)\nlet f (xs : int list) : int =") == ()


def test_fun_inside_a_span_is_not_split():
    prompt = (
        "(** [count_if p xs] counts. Example: [count_if (fun x -> x > 2) [1; 5; 3; 2] = 2]. *)\n"
        "let count_if (p : int -> bool) (xs : int list) : int ="
    )
    assert examples(prompt) == ("count_if (fun x -> x > 2) [1; 5; 3; 2] = 2",)


def test_toplevel_transcript():
    prompt = (
        "(** Adds two integers.\n"
        "    # add 1 2;;\n"
        "    - : int = 3\n"
        "    # add (-1)\n"
        "        1;;\n"
        "    - : int = 0\n"
        "    # add;;\n"
        "    - : int -> int -> int = <fun>\n"
        "*)\n" + SIG_ADD
    )
    assert examples(prompt) == ("(add 1 2) = (3)", "(add (-1) 1) = (0)")


def test_toplevel_transcript_in_a_code_block_with_a_multi_line_value():
    prompt = (
        "(** [pairs n] lists the pairs below [n].\n"
        "    {[\n"
        "      # pairs 2;;\n"
        "      - : (int * int) list =\n"
        "      [(0, 0); (0, 1);\n"
        "       (1, 0); (1, 1)]\n"
        "      pairs 0 = []\n"
        "    ]} *)\n"
        "let pairs (n : int) : (int * int) list ="
    )
    assert examples(prompt) == ("(pairs 2) = ([(0, 0); (0, 1); (1, 0); (1, 1)])", "pairs 0 = []")


def test_arrow_forms():
    prompt = (
        "(** Return the sum of x and y.\n"
        "    Examples:\n"
        "      add 1 2 => 3\n"
        "      add 2 2 ==> 4\n"
        "    - add 0 5 -> 5\n"
        "    e.g. add (-1) 1 => 0, add 10 20 => 30.\n"
        '    Note that x -> y is not an example, nor is "add x y => the sum".\n'
        "    add x y returns the sum of both; add 3 4 returns 7. *)\n" + SIG_ADD
    )
    assert examples(prompt) == (
        "(add 1 2) = (3)",
        "(add 2 2) = (4)",
        "(add 0 5) = (5)",
        "(add (-1) 1) = (0)",
        "(add 10 20) = (30)",
        "(add 3 4) = (7)",
    )


def test_arrow_after_fun_is_not_an_example_arrow():
    prompt = (
        "(** [apply f x] applies [f].\n"
        "    apply (fun x -> x + 1) 2 => 3\n"
        "    apply fun x -> x\n"
        "    fun x -> apply x -> 1 *)\n"
        "let apply (f : int -> int) (x : int) : int ="
    )
    assert examples(prompt) == ("(apply (fun x -> x + 1) 2) = (3)",)


def test_ocamldoc_returns_and_bindings():
    prompt = (
        "type tree = Leaf | Node of tree * int * tree\n\n"
        "(** [span t] returns [(lo, hi)] where [lo] is the least key of [t]. [span Leaf] returns [None].\n"
        "    Example: with [t = Node (Leaf, 2, Node (Leaf, 5, Leaf))], [span t = Some (2, 5)],\n"
        "    and [span (Node (Leaf, 1, Leaf))] returns [Some (1, 1)] (a single node). *)\n"
        "let span (t : tree) : (int * int) option ="
    )
    assert examples(prompt) == (
        "(span Leaf) = (None)",
        "let t = Node (Leaf, 2, Node (Leaf, 5, Leaf)) in span t = Some (2, 5)",
        "(span (Node (Leaf, 1, Leaf))) = (Some (1, 1))",
    )


def test_doctest_style():
    prompt = "(* Adds.\n * >>> add 1 2\n * 3\n * >>> add 5 5;;\n * - : int = 10\n *)\n" + SIG_ADD
    assert examples(prompt) == ("(add 1 2) = (3)", "(add 5 5) = (10)")


def test_only_comments_are_searched_never_the_signature_or_code():
    prompt = (
        'let note = "(* [add 1 1 = 7] *)"\n'
        "let table = [add 2 2 = 9]\n"
        "(** [add x y] adds. Example: [add 1 1 = 2]. *)\n"
        "let add (x : int) (* [add 0 0 = 1] *) (y : int) : int ="
    )
    assert examples(prompt) == ("add 1 1 = 2",)


def test_deduplicated_in_order_and_capped():
    prompt = (
        "(** [add 1 1 = 2], [add 1  1 = 2], [add\n    1 1 = 2], [add 0 0 = 0].\n    "
        + ", ".join(f"[add {i} 1 = {i + 1}]" for i in range(2, 12))
        + " *)\n"
        + SIG_ADD
    )
    got = examples(prompt)
    assert got[:3] == ("add 1 1 = 2", "add 0 0 = 0", "add 2 1 = 3")
    assert len(got) == MAX_EXAMPLES
    # whitespace inside a string literal is the value's own
    assert examples('(** [f "a  b" = 2]. *)\nlet f (s : string) : int =') == ('f "a  b" = 2',)


def test_doc_notation_and_no_signature_give_nothing():
    assert examples("(** [f [1; 2; ...] = [2; 3; ...]]. *)\nlet f (xs : int list) : int list =") == ()
    assert examples("(** [f 1 = 2] *)") == ()


def test_multipl_e_mbpp_prompts_state_no_examples():
    mbpp, _report = load_problems(str(multipl_e_file("mbpp-ml-fixed.jsonl")))
    assert doc_examples(mbpp[0]) == ()
    assert sum(bool(doc_examples(p)) for p in mbpp) == 0


def test_count_of_bundled_problems_with_doc_examples(bundled):
    n = sum(bool(doc_examples(p)) for p in bundled.values())
    print(f"bundled problems with doc examples: {n} of {len(bundled)}")
    assert n >= 0.9 * len(bundled)  # 317 of 340 measured


# -- visible_examples -----------------------------------------------------------------------------

DOUBLE = (
    "(** [double x] is twice [x].\n"
    '    Examples: [double 3 = 6], [double 2 = 5], [double "a" = 2], [double 0 = 0]. *)\n'
    "let double (x : int) : int ="
)


def test_wrong_and_ill_typed_examples_are_dropped(verifier):
    p = problem(DOUBLE, solution="x * 2", id="double_visible")
    assert doc_examples(p) == ("double 3 = 6", "double 2 = 5", 'double "a" = 2', "double 0 = 0")
    assert visible_examples(p, verifier) == ("double 3 = 6", "double 0 = 0")


def test_without_a_reference_only_the_types_are_checked(verifier):
    p = problem(DOUBLE, id="double_no_reference")
    assert visible_examples(p, verifier) == ("double 3 = 6", "double 2 = 5", "double 0 = 0")


def test_bundled_examples_need_their_types_and_bindings(verifier, bundled):
    assert visible_examples(bundled["lst_count_if"], verifier) == doc_examples(bundled["lst_count_if"])
    # [compose_all [f; g; h] x = ...] names values the prompt never defines
    assert visible_examples(bundled["lst_compose_all"], verifier) == (
        "compose_all [(fun x -> x + 1); (fun x -> x * 2)] 5 = 11",
        "compose_all [] 42 = 42",
    )
    assert visible_examples(bundled["mut_stack_pop"], verifier) == (
        "let s = ref [4; 5] in (pop s) = (Some 4)",
    )


def test_cached_and_thread_safe(verifier, bundled):
    p = bundled["lst_interleave"]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: visible_examples(p, verifier), range(8)))
    assert len(set(results)) == 1 and len(results[0]) == 2
    before = dict(verifier.stats)
    assert visible_examples(p, verifier) == results[0]
    assert dict(verifier.stats) == before


def test_count_of_bundled_problems_with_visible_examples(verifier, bundled):
    sample = list(bundled.values())[::5]  # the whole set takes ~15 s: a fifth of it
    with ThreadPoolExecutor(4) as pool:
        n = sum(bool(v) for v in pool.map(lambda p: visible_examples(p, verifier), sample))
    print(f"sampled bundled problems with visible examples: {n} of {len(sample)}")
    assert n >= 0.85 * len(sample)  # 62 of 68 measured (312 of 340 over the whole set)
