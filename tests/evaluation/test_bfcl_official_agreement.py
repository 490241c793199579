"""Differential test: our BFCL verdicts equal BFCL's official ``ast_checker`` on seeded perturbations.

For every AST category a fixed, seeded sample of shipped cases is taken; for
each case our own generator starts from a correct answer (the oracle's, or a
random other acceptable one with optional parameters left out) and applies one
or two seeded perturbations: values, types, nesting, strings, function names,
missing/extra parameters, call orderings. Each variant is judged twice:

- ours: ``check_case`` on the calls as our parser hands them over
  (``{"name", "arguments"}`` with the tool names the model was offered);
- BFCL's: the official ``ast_checker`` of the installed wheel, called exactly as
  BFCL's eval runner calls it for a function-calling model whose API forbids
  ``.`` in names (``underscore_to_dot=True``): ``[{name: arguments}]`` with the
  names as written. When the official checker raises (BFCL's run would stop),
  the reference verdict is "failed".

They must agree on every variant. The only kind BFCL decides by model-handler
mode is the function-name form (prompt-mode models must write the dotted
original name); the test checks that the FC and prompt-mode verdicts differ on
nothing else.
"""

from __future__ import annotations

import copy
import json
import random
from collections import Counter
from typing import Any

import pytest

pytest.importorskip("bfcl_eval")

import contextlib

from components.evaluation.bfcl.ast_checker import check_case  # noqa: E402
from components.evaluation.bfcl.data import AST_CATEGORIES, BfclCase, bfcl_package_dir, load_cases  # noqa: E402
from components.evaluation.bfcl.official import FC_MODEL, PROMPT_MODEL, official_checker  # noqa: E402
from components.evaluation.bfcl.oracle import oracle_calls  # noqa: E402

SEED = 20261125
CASES_PER_CATEGORY = 150
VARIANTS_PER_CASE = 24
Calls = list[dict[str, Any]]


# --------------------------------------------------------------------------- the reference verdict


def official_verdict(case: BfclCase, calls: Calls, model: str = FC_MODEL) -> bool:
    """BFCL's own verdict on the calls as a function-calling model wrote them."""
    output = [{call["name"]: call["arguments"]} for call in calls]
    try:
        return bool(official_checker().check(case.functions, output, case.ground_truth, case.category, model)["valid"])
    except Exception:  # noqa: BLE001 - BFCL's run stops here; no pass either way
        return False


# --------------------------------------------------------------------------- the generator


def _is_omit(value: Any) -> bool:
    return isinstance(value, str) and value == ""


def _random_answer(value: Any, rng: random.Random) -> Any:
    """Resolve nested possible answers with random choices (dict entries list alternatives)."""
    if isinstance(value, dict):
        out = {}
        for key, alternatives in value.items():
            options = alternatives if isinstance(alternatives, list) else [alternatives]
            concrete = [o for o in options if not _is_omit(o)]
            if concrete and not (len(concrete) < len(options) and rng.random() < 0.3):
                out[key] = _random_answer(rng.choice(concrete), rng)
        return out
    if isinstance(value, list):
        return [_random_answer(item, rng) for item in value]
    return value


def alternative_answer(case: BfclCase, rng: random.Random) -> Calls:
    """Another (usually) correct answer: random acceptable values, optional parameters sometimes left out."""
    calls = []
    for entry in case.ground_truth:
        ((name, params),) = entry.items()
        doc = next(f for f in case.functions if f["name"] == name)
        required = set(doc["parameters"].get("required", []))
        arguments = {}
        for param, alternatives in params.items():
            concrete = [a for a in alternatives if not _is_omit(a)]
            omittable = len(concrete) < len(alternatives)
            if not concrete or (omittable and param not in required and rng.random() < 0.35):
                continue
            arguments[param] = _random_answer(rng.choice(concrete), rng)
        calls.append({"name": case.tool_name(name), "arguments": arguments})
    return calls


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every position inside a value (for nested perturbations), the value itself first."""
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*path, index))
    return found


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        value = value[step]
    return value


def _set(root: dict[str, Any], path: tuple[Any, ...], new: Any) -> None:
    target = root
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = new


_PUNCTUATION = [" ", ",", ".", "/", "-", "_", "*", "^", "'", '"', "!", "  "]


def _string_change(text: str, rng: random.Random) -> str:
    kind = rng.randrange(8)
    if kind == 0:
        return text.upper()
    if kind == 1:
        return text.lower().title()
    if kind == 2:
        at = rng.randrange(len(text) + 1)
        return text[:at] + rng.choice(_PUNCTUATION) + text[at:]
    if kind == 3:
        return text.replace("'", '"') if "'" in text else text.replace('"', "'") if '"' in text else text + "'"
    if kind == 4:
        return rng.choice([" ", ".", "", " . ", "-"])
    if kind == 5:
        return text + rng.choice(["x", " 2", "s"])
    if kind == 6:
        return text.strip() + " "
    return text[:-1] if text else "a"


def _type_change(value: Any, rng: random.Random) -> Any:
    if isinstance(value, bool):
        return rng.choice([str(value), str(value).lower(), int(value), not value, [value]])
    if isinstance(value, int):
        return rng.choice([float(value), str(value), value + 1, [value], True, -value])
    if isinstance(value, float):
        return rng.choice([int(value) if value.is_integer() else round(value), str(value), value + 0.5, [value], None])
    if isinstance(value, str):
        options: list[Any] = [[value], None, 0, True, _string_change(value, rng)]
        if value.strip().lower() in ("true", "false"):
            options.append(value.strip().lower() == "true")
        with contextlib.suppress(ValueError):
            options.append(json.loads(value))
        return rng.choice(options)
    if isinstance(value, list):
        return rng.choice(
            [
                str(value),
                tuple_like(value),
                [],
                list(reversed(value)),
                value[:-1],
                value + value[-1:],
                value[0] if value else None,
                json.dumps(value),
            ]
        )
    if isinstance(value, dict):
        return rng.choice([json.dumps(value), [value], {}, str(value)])
    return rng.choice(["None", "", 0, []])


def tuple_like(value: list[Any]) -> list[Any]:
    """JSON has no tuples; the closest a function-calling model can send is the same list."""
    return list(value)


def _schema_of(case: BfclCase, call: dict[str, Any]) -> dict[str, Any]:
    original = case.name_map.get(call["name"], call["name"])
    doc = next((f for f in case.functions if f["name"] == original), None)
    return (doc or {}).get("parameters", {}).get("properties", {})


def _plausible(schema: dict[str, Any], rng: random.Random) -> Any:
    kind = schema.get("type")
    if "enum" in schema and schema["enum"]:
        return rng.choice(schema["enum"])
    if "default" in schema:
        return schema["default"]
    return {"integer": 3, "float": 2.5, "string": "value", "boolean": True, "array": [], "tuple": [], "dict": {}}.get(
        kind, "x"
    )


def _mutate(case: BfclCase, calls: Calls, rng: random.Random) -> tuple[Calls, str]:
    """One seeded perturbation of a list of calls; returns the new calls and its kind."""
    calls = copy.deepcopy(calls)
    kinds = ["value", "value", "type", "type", "nested", "string", "string", "name", "missing", "extra", "order"]
    kind = rng.choice(kinds)
    if not calls:
        return calls, "none"
    call = rng.choice(calls)
    args = call["arguments"]
    params = list(args)
    if kind in ("value", "type", "nested", "string") and params:
        param = rng.choice(params)
        if kind == "value":
            truth = next(
                (p for entry in case.ground_truth for n, p in entry.items() if case.tool_name(n) == call["name"]), {}
            )
            alternatives = [a for a in truth.get(param, []) if not _is_omit(a)]
            other = [v for p, v in args.items() if p != param]
            pool = alternatives + other + [0, 1, -1, 2.0, "", "unknown", None, True, False]
            args[param] = copy.deepcopy(rng.choice(pool))
        elif kind == "type":
            args[param] = _type_change(args[param], rng)
        elif kind == "string":
            strings = [p for p in _paths(args[param]) if isinstance(_get(args[param], p), str)]
            if strings:
                path = rng.choice(strings)
                changed = _string_change(_get(args[param], path), rng)
                if path:
                    _set(args[param], path, changed)
                else:
                    args[param] = changed
            else:
                args[param] = _type_change(args[param], rng)
        else:  # nested: change something inside a list or dict value
            inner = _paths(args[param])[1:]
            if inner:
                path = rng.choice(inner)
                old = _get(args[param], path)
                new = (
                    _type_change(old, rng)
                    if rng.random() < 0.6
                    else (_string_change(old, rng) if isinstance(old, str) else old)
                )
                _set(args[param], path, new)
                container = _get(args[param], path[:-1])
                if isinstance(container, dict) and rng.random() < 0.3:
                    if rng.random() < 0.5:
                        container["zz_extra"] = 1
                    else:
                        container.pop(path[-1], None)
            else:
                args[param] = _type_change(args[param], rng)
        return calls, kind
    if kind == "name":
        original = case.name_map.get(call["name"], call["name"])
        others = [t["function"]["name"] for t in case.tools if t["function"]["name"] != call["name"]]
        call["name"] = rng.choice(
            [original, original.upper(), call["name"] + "_v2", "no_such_function", *(others[:1] or [original])]
        )
        return calls, "name_dotted" if call["name"] == original and "." in original else "name"
    if kind == "missing" and params:
        del args[rng.choice(params)]
        return calls, kind
    if kind == "extra":
        schema = _schema_of(case, call)
        unused = [p for p in schema if p not in args]
        if unused and rng.random() < 0.7:
            param = rng.choice(unused)
            args[param] = _plausible(schema[param], rng)
        else:
            args["zz_unexpected"] = rng.choice([1, "x", None])
        return calls, kind
    # order: shuffle, drop, duplicate calls, or reorder the arguments
    choice = rng.randrange(4)
    if choice == 0:
        rng.shuffle(calls)
    elif choice == 1 and len(calls) > 1:
        calls.pop(rng.randrange(len(calls)))
    elif choice == 2:
        calls.append(copy.deepcopy(rng.choice(calls)))
    else:
        call["arguments"] = dict(reversed(list(args.items())))
    return calls, "order"


def variants(case: BfclCase, rng: random.Random) -> list[tuple[Calls, str]]:
    """The seeded variants of one case: both correct answers, then one or two perturbations of either."""
    (oracle,) = oracle_calls(case)
    bases = [oracle, alternative_answer(case, rng)]
    out: list[tuple[Calls, str]] = [(copy.deepcopy(oracle), "oracle"), (copy.deepcopy(bases[1]), "alternative")]
    while len(out) < VARIANTS_PER_CASE:
        calls, kind = _mutate(case, rng.choice(bases), rng)
        if rng.random() < 0.3:
            calls, second = _mutate(case, calls, rng)
            kind = f"{kind}+{second}"
        out.append((calls, kind))
    return out


def sample(category: str) -> list[BfclCase]:
    cases = load_cases(category)
    rng = random.Random(f"{SEED}:{category}")
    return cases if len(cases) <= CASES_PER_CATEGORY else rng.sample(cases, CASES_PER_CATEGORY)


# --------------------------------------------------------------------------- the tests


def test_the_reference_is_the_wheels_own_function() -> None:
    path = bfcl_package_dir() / "eval_checker" / "ast_eval" / "ast_checker.py"
    assert official_checker().ast_checker.__code__.co_filename == str(path)


def _names_differ_by_mode(case: BfclCase, calls: Calls) -> bool:
    """Whether the function-name form matters here: a dotted function is involved (offered or written)."""
    names = {c["name"] for c in calls} | {n for entry in case.ground_truth for n in entry}
    return any("." in case.name_map.get(n, n) for n in names)


@pytest.mark.parametrize("category", AST_CATEGORIES)
def test_verdicts_equal_the_official_checker(category: str) -> None:
    disagreements: list[str] = []
    mode_dependent: list[str] = []
    tally: Counter[str] = Counter()
    for case in sample(category):
        rng = random.Random(f"{SEED}:{case.case_id}")
        for index, (calls, kind) in enumerate(variants(case, rng)):
            ours = check_case(case, calls).passed
            official = official_verdict(case, calls)
            tally["pass" if official else "fail"] += 1
            if ours != official:
                disagreements.append(f"{case.case_id}#{index} {kind}: ours={ours} official={official} {calls}")
            if official_verdict(case, calls, PROMPT_MODEL) != official and not _names_differ_by_mode(case, calls):
                mode_dependent.append(f"{case.case_id}#{index} {kind}")
    assert disagreements == [], f"{len(disagreements)} of {sum(tally.values())} differ:\n" + "\n".join(
        disagreements[:10]
    )
    assert mode_dependent == []  # FC vs prompt mode differs only on the function-name form
    n = sum(tally.values())
    # The generator must produce both verdicts in earnest, or the comparison proves little.
    assert n >= min(CASES_PER_CATEGORY, len(load_cases(category))) * VARIANTS_PER_CASE
    assert tally["pass"] >= 0.15 * n and tally["fail"] >= 0.3 * n, tally


def test_the_name_form_is_the_mode_dependent_kind() -> None:
    """A dotted function: FC mode wants the sanitised name, prompt mode the original; we follow FC mode."""
    case = next(c for c in load_cases("simple_python") if any("." in f["name"] for f in c.functions))
    (calls,) = oracle_calls(case)
    dotted = [{**calls[0], "name": case.name_map[calls[0]["name"]]}]
    assert check_case(case, calls).passed and official_verdict(case, calls)
    assert not official_verdict(case, calls, PROMPT_MODEL)
    assert not check_case(case, dotted).passed and not official_verdict(case, dotted)
    assert official_verdict(case, dotted, PROMPT_MODEL)


def test_generator_is_seeded() -> None:
    case = load_cases("parallel_multiple", limit=3)[2]
    first = variants(case, random.Random("x"))
    assert first == variants(case, random.Random("x"))
    assert len({json.dumps(c, sort_keys=True, default=str) for c, _ in first}) > VARIANTS_PER_CASE // 2
