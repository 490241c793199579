"""BFCL v4 (Berkeley Function Calling Leaderboard) evaluation, offline.

Data comes from the ``bfcl-eval`` wheel; the checkers are our own
implementation of BFCL's rules (see REFERENCE.md section 3), so none of
bfcl_eval's vendor-SDK-importing modules are needed.
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
