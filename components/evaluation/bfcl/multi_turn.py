"""Execute and check BFCL ``multi_turn_base`` episodes.

The stateful API classes (file system, trading bot, ...) ship in the wheel
under ``bfcl_eval/eval_checker/multi_turn_eval/func_source_code/``; they are
library code, so we import them (their package ``__init__`` files are empty,
so no vendor SDK is pulled in). Model calls and ground-truth calls are
dispatched to methods by name through an allowlist built from the documented
tools -- nothing is ever ``eval``ed.

Checking follows BFCL: the model's environment and the ground truth's each
start from ``initial_config`` and persist across turns; after every turn with
ground-truth calls, the public state (attributes not starting with ``_``) of
every involved instance must match, and the ground truth's results for that
turn must all appear (as a multiset) among the model's results so far.

Model calls are untrusted, and some shipped methods do unbounded work on
their arguments (``MathAPI.power(base=10, exponent=10**9)`` builds a
billion-digit integer; ``logarithm``/``square_root`` take any ``precision``).
Two bounds make every call return within ``MAX_CALL_SECONDS``: per-method
argument guards refuse, before the call, the inputs whose cost is inside one
C-level operation (which nothing can interrupt), and a deadline raises
:class:`CallTimeout` into a call that is still running Python code after
``MAX_CALL_SECONDS``. Both come back to the model as ``Error during
execution: ...`` text. An interactive episode records each turn's results and
state (:meth:`MultiTurnEnv.end_turn`), so the checker judges the calls that
were made instead of executing every model call a second time.
"""

from __future__ import annotations

import copy
import ctypes
import decimal
import importlib
import inspect
import json
import math
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeGuard

from components.evaluation.bfcl.call_parser import ParsedCall, parse_call
from components.evaluation.bfcl.data import (
    MULTI_TURN_CATEGORIES,
    BfclCase,
    multi_turn_docs,
)
from components.evaluation.bfcl.result import CheckResult, short_repr

_BACKEND_PACKAGE = "bfcl_eval.eval_checker.multi_turn_eval.func_source_code"
#: API class -> module in the backend package that defines it.
_CLASS_MODULES: dict[str, str] = {
    "GorillaFileSystem": "gorilla_file_system",
    "MathAPI": "math_api",
    "MessageAPI": "message_api",
    "TwitterAPI": "posting_api",
    "TicketAPI": "ticket_api",
    "TradingBot": "trading_bot",
    "TravelAPI": "travel_booking",
    "VehicleControlAPI": "vehicle_control",
}
#: Classes without a scenario to load (BFCL does not call ``_load_scenario``).
_STATELESS_CLASSES: frozenset[str] = frozenset({"MathAPI"})
#: Results handed back to an interactive model are capped at this many chars.
DEFAULT_MAX_RESULT_CHARS = 4_000
ERROR_PREFIX = "Error during execution: "
#: Wall-clock bound of one call (the deadline for calls still running Python code).
MAX_CALL_SECONDS = 1.0
#: Largest exact integer power computed (bits); 10**9 digits would take minutes and gigabytes.
MAX_POWER_BITS = 100_000
#: Largest ``precision`` (significant digits) passed to mpmath/decimal; BFCL's tasks use a handful.
MAX_PRECISION = 1_000


class CallTimeout(BaseException):
    """Raised inside a call that ran past its deadline (a BaseException: API code catching Exception cannot eat it)."""


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int)  # bool included: True ** n is cheap anyway


def _power_guard(arguments: Mapping[str, Any]) -> str | None:
    base, exponent = arguments.get("base"), arguments.get("exponent")
    if not (_is_int(base) and _is_int(exponent)) or exponent <= 0 or abs(base) <= 1:
        return None  # float powers are one bounded C operation; negative exponents give floats
    bits = math.inf if exponent.bit_length() > 64 else exponent * math.log2(abs(base))
    if bits > MAX_POWER_BITS:
        size = "more than 10**19" if math.isinf(bits) else f"about {int(bits * 0.30103):,}"
        return f"power(base, exponent) would have {size} digits; refused (limit {int(MAX_POWER_BITS * 0.30103):,})"
    return None


def _precision_guard(arguments: Mapping[str, Any]) -> str | None:
    precision = arguments.get("precision")
    if isinstance(precision, int | float) and not (abs(precision) <= MAX_PRECISION):
        return f"precision is out of range; at most {MAX_PRECISION} digits are computed"
    return None


#: (class, method) -> check of the arguments whose cost no deadline can cut short.
ARGUMENT_GUARDS: dict[tuple[str, str], Callable[[Mapping[str, Any]], str | None]] = {
    ("MathAPI", "power"): _power_guard,
    ("MathAPI", "logarithm"): _precision_guard,
    ("MathAPI", "square_root"): _precision_guard,
}


def _deliver_pending() -> None:
    """A Python-level call: a pending asynchronous exception is raised here, inside the caller's try."""


def run_with_deadline(fn: Callable[[], Any], seconds: float | None) -> Any:
    """Run ``fn()``; if it is still running Python code after ``seconds``, raise ``TimeoutError``.

    A timer thread raises :class:`CallTimeout` asynchronously in the calling
    thread (checked between bytecodes), which works in any thread, unlike
    ``signal.alarm``. A single long C-level operation finishes before the
    exception lands; :data:`ARGUMENT_GUARDS` keeps those small.
    """
    if not seconds or seconds <= 0:
        return fn()
    target = threading.get_ident()
    lock = threading.Lock()
    running = [True]

    def fire() -> None:
        with lock:
            if running[0]:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(target), ctypes.py_object(CallTimeout))

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    try:
        try:
            timer.start()
            return fn()
        finally:
            with lock:
                running[0] = False
            timer.cancel()
            _deliver_pending()
    except CallTimeout:
        raise TimeoutError(f"the call ran longer than {seconds:g}s and was stopped") from None


def load_api_class(class_name: str) -> type:
    """Import one shipped API class by name (module import is cached by Python)."""
    if class_name not in _CLASS_MODULES:
        raise ValueError(f"unknown multi-turn API class {class_name!r}")
    module = importlib.import_module(f"{_BACKEND_PACKAGE}.{_CLASS_MODULES[class_name]}")
    cls = getattr(module, class_name)
    if not isinstance(cls, type):
        raise TypeError(f"{class_name} is not a class")
    return cls


@contextmanager
def _isolated_precision() -> Iterator[None]:
    """Undo global precision changes a call makes.

    ``MathAPI.logarithm`` sets ``mpmath.mp.dps`` and ``square_root`` sets the
    decimal context precision, both process-global; without this, one call
    would change later results (and the model and ground-truth runs would
    diverge depending on what ran before).
    """
    mpmath = sys.modules.get("mpmath")
    saved_dps = mpmath.mp.dps if mpmath is not None else None
    try:
        with decimal.localcontext(decimal.Context()):
            yield
    finally:
        if mpmath is not None and saved_dps is not None:
            mpmath.mp.dps = saved_dps


def _format_result(result: Any) -> str:
    """Results are compared as strings, dicts in JSON form when possible."""
    if isinstance(result, str):
        return result
    if isinstance(result, dict):
        try:
            return json.dumps(result)
        except (TypeError, ValueError):
            return str(result)
    return str(result)


def is_error_result(text: str) -> bool:
    """Whether a call's result text reports a failure: our dispatcher's error, or the API's own ``{"error": ...}``.

    The shipped API classes signal mistakes (a missing file, ``cd`` into a
    folder that does not exist) by returning a dict with an ``error`` key
    instead of raising; early stops count those as failed calls.
    """
    if text.startswith(ERROR_PREFIX):
        return True
    if not text.startswith("{") or '"error"' not in text:
        return False
    try:
        value = json.loads(text)
    except ValueError:
        return False
    return isinstance(value, dict) and "error" in value


def public_state(instance: object) -> dict[str, Any]:
    """The part of an instance BFCL compares: attributes not starting with ``_``."""
    return {k: v for k, v in vars(instance).items() if not k.startswith("_")}


class MultiTurnEnv:
    """A live multi-turn environment: one fresh instance per involved API class.

    ``call`` is what an interactive episode uses: it never raises for model
    mistakes (unknown tool, bad arguments, exceptions inside the API) but
    returns the error as text, and caps the result's length.
    """

    def __init__(
        self,
        case: BfclCase,
        max_result_chars: int = DEFAULT_MAX_RESULT_CHARS,
        max_call_seconds: float | None = MAX_CALL_SECONDS,
    ) -> None:
        if case.category not in MULTI_TURN_CATEGORIES:
            raise ValueError(f"{case.case_id} is not a multi-turn case")
        self.case = case
        self.max_result_chars = max_result_chars
        self.max_call_seconds = max_call_seconds
        self.instances: dict[str, object] = {}
        self._methods: dict[str, Callable[..., Any]] = {}
        self._owners: dict[str, str] = {}
        self._turn_results: list[str] = []
        config = case.initial_config or {}
        for class_name in case.involved_classes:
            instance = load_api_class(class_name)()
            if class_name not in _STATELESS_CLASSES:
                scenario = copy.deepcopy(config.get(class_name, {}))
                instance._load_scenario(scenario, long_context=False)
            self.instances[class_name] = instance
            for doc in multi_turn_docs(class_name):
                method_name = str(doc["name"])
                method = getattr(instance, method_name, None)
                if not method_name.startswith("_") and inspect.ismethod(method):
                    self._methods[method_name] = method
                    self._owners[method_name] = class_name

    @property
    def tool_names(self) -> list[str]:
        return sorted(self._methods)

    def _method(self, name: str) -> Callable[..., Any]:
        method = self._methods.get(self.case.original_name(name))
        if method is None:
            raise KeyError(f"unknown function {name!r}")
        return method

    def bind_arguments(
        self, name: str, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Name positional arguments using the method's signature."""
        signature = inspect.signature(self._method(name))
        bound = signature.bind(*args, **dict(kwargs or {}))
        named: dict[str, Any] = {}
        for param_name, value in bound.arguments.items():
            kind = signature.parameters[param_name].kind
            if kind is inspect.Parameter.VAR_KEYWORD:
                named.update(value)
            elif kind is inspect.Parameter.VAR_POSITIONAL:
                raise ValueError(f"{name} takes *args; cannot name them")
            else:
                named[param_name] = value
        return named

    def execute(self, name: Any, arguments: Any) -> str:
        """Run one call and return its full result (or error) as a string."""
        try:
            if not isinstance(name, str):
                raise TypeError(f"function name must be a string, not {type(name).__name__}")
            method = self._method(name)
            if arguments is None:
                arguments = {}
            if not isinstance(arguments, Mapping) or not all(isinstance(key, str) for key in arguments):
                raise TypeError("arguments must be an object with string keys")
            original = self.case.original_name(name)
            guard = ARGUMENT_GUARDS.get((self._owners.get(original, ""), original))
            refusal = guard(arguments) if guard is not None else None
            if refusal:
                raise ValueError(refusal)
            kwargs = copy.deepcopy(dict(arguments))
            with _isolated_precision():
                result = run_with_deadline(lambda: method(**kwargs), self.max_call_seconds)
            return _format_result(result)
        except Exception as exc:  # model mistakes become observations, not crashes
            return f"{ERROR_PREFIX}{exc}"

    def call(self, name: Any, arguments: Any) -> str:
        """Run one call for an interactive model; the result text is bounded.

        The full result is also kept for this turn's record (:meth:`end_turn`).
        """
        text = self.execute(name, arguments)
        self._turn_results.append(text)
        if len(text) > self.max_result_chars:
            cut = self.max_result_chars
            text = f"{text[:cut]}... [truncated {len(text) - cut} chars]"
        return text

    def execute_parsed(self, parsed: ParsedCall) -> str:
        """Run a parsed ground-truth call (positional arguments allowed)."""
        try:
            arguments = self.bind_arguments(parsed.name, parsed.args, parsed.kwargs)
        except (KeyError, TypeError, ValueError) as exc:
            return f"{ERROR_PREFIX}{exc}"
        return self.execute(parsed.name, arguments)

    def execute_string(self, text: str) -> str:
        """Parse (never eval) a call string and run it; refusals raise."""
        return self.execute_parsed(parse_call(text))

    def state(self) -> dict[str, dict[str, Any]]:
        """A deep copy of every instance's public state, keyed by class name."""
        return {name: copy.deepcopy(public_state(instance)) for name, instance in self.instances.items()}

    def end_turn(self) -> ExecutedTurn:
        """Close the current user turn: its calls' full results and the state they left."""
        turn = ExecutedTurn(results=tuple(self._turn_results), state=self.state())
        self._turn_results = []
        return turn


@dataclass(frozen=True)
class ExecutedTurn:
    """What the model's calls of one user turn returned and the public state after them."""

    results: tuple[str, ...]
    state: dict[str, dict[str, Any]]


def _state_difference(model_state: Mapping[str, Mapping[str, Any]], truth: MultiTurnEnv) -> str | None:
    missing = object()
    for class_name, truth_instance in truth.instances.items():
        model_public = model_state.get(class_name, {})
        for attr, expected in public_state(truth_instance).items():
            actual = model_public.get(attr, missing)
            if actual is missing or actual != expected:
                shown = "<missing>" if actual is missing else short_repr(actual)
                return f"state mismatch in {class_name}.{attr}: expected {short_repr(expected)}, got {shown}"
    return None


def _missing_results(expected: Sequence[str], produced: Sequence[str]) -> list[str]:
    """Ground-truth results not found in the model's (multiset containment)."""
    pool = list(produced)
    missing: list[str] = []
    for item in expected:
        if item in pool:
            pool.remove(item)
        else:
            missing.append(item)
    return missing


def check_multi_turn(
    case: BfclCase,
    model_calls_per_turn: Sequence[Sequence[Any]],
    executed: Sequence[ExecutedTurn] | None = None,
) -> CheckResult:
    """Judge a multi-turn episode from the model's decoded calls per turn.

    ``executed``: the record of an interactive episode (one :class:`ExecutedTurn`
    per user turn); the model's calls are then judged on what they returned
    when they ran, not executed a second time.
    """
    truth_turns: list[list[str]] = case.ground_truth
    if len(model_calls_per_turn) != len(truth_turns):
        return CheckResult.fail(f"expected calls for {len(truth_turns)} turns, got {len(model_calls_per_turn)}")
    if executed is not None and len(executed) != len(truth_turns):
        executed = None  # an incomplete record: replay instead
    model_env = MultiTurnEnv(case) if executed is None else None
    truth_env = MultiTurnEnv(case)
    model_results: list[str] = []
    for turn, (truth_calls, model_calls) in enumerate(zip(truth_turns, model_calls_per_turn, strict=True)):
        if model_env is None:
            assert executed is not None
            model_results.extend(executed[turn].results)
            model_state: Mapping[str, Mapping[str, Any]] = executed[turn].state
        else:
            for call in model_calls:
                if isinstance(call, Mapping):
                    model_results.append(model_env.execute(call.get("name"), call.get("arguments", {})))
                else:
                    model_results.append(f"{ERROR_PREFIX}call is not an object")
            model_state = {name: public_state(instance) for name, instance in model_env.instances.items()}
        truth_results = [truth_env.execute_string(text) for text in truth_calls]
        if not truth_calls:
            continue
        if not model_calls:
            return CheckResult.fail(f"turn {turn}: no calls, ground truth makes {len(truth_calls)}")
        difference = _state_difference(model_state, truth_env)
        if difference:
            return CheckResult.fail(f"turn {turn}: {difference}")
        missing = _missing_results(truth_results, model_results)
        if missing:
            return CheckResult.fail(
                f"turn {turn}: ground-truth results missing from the model's: {short_repr(missing, 300)}"
            )
    return CheckResult.ok()
