"""BFCL v4 (Berkeley Function Calling Leaderboard) evaluation, offline.

Data comes from the ``bfcl-eval`` wheel. Single-turn cases are judged by the
wheel's own ``ast_checker``, loaded without the vendor SDKs its package
imports (:mod:`components.evaluation.bfcl.official`), so scores are BFCL's;
multi-turn cases by our execution checker, which never ``eval``s call strings.
"""

from components.evaluation.bfcl.ast_checker import check_case
from components.evaluation.bfcl.data import BfclCase, list_categories, load_cases
from components.evaluation.bfcl.multi_turn import MultiTurnEnv, check_multi_turn
from components.evaluation.bfcl.oracle import oracle_calls
from components.evaluation.bfcl.result import CheckResult

__all__ = [
    "BfclCase",
    "CheckResult",
    "MultiTurnEnv",
    "check_case",
    "check_multi_turn",
    "list_categories",
    "load_cases",
    "oracle_calls",
]
