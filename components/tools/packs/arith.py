"""The in-domain ``arith`` pack: the method's 12 arithmetic tools and word problems.

This is the pack training data is generated from. Difficulty 1 to 4 is roughly
the number of tool calls the canonical solution needs; many problems admit other
valid tool sequences (``sum_numbers`` vs chained ``add``, either operand order,
independent calls in either order or together), and the expert picks among them.
"""

from __future__ import annotations

from typing import ClassVar

from components.tools.packs.arith_templates import ARITH_TEMPLATES
from components.tools.packs.arith_tools import ARITH_FUNCTIONS
from components.tools.packs.templated import Template, TemplatePack
from components.tools.tool import Tool, tool_from_function

ARITH_TOOLS: tuple[Tool, ...] = tuple(tool_from_function(fn) for fn in ARITH_FUNCTIONS)


class ArithPack(TemplatePack):
    """Word problems (shopping, sharing, areas, savings, ...) solved with arithmetic tools."""

    name: ClassVar[str] = "arith"
    description: ClassVar[str] = (
        "You have arithmetic tools (add, subtract, multiply, divide, sum_numbers, floor, ceil, round_number, "
        "power, sqrt, abs_value, modulo); use them for every calculation in the word problem."
    )
    difficulties: ClassVar[tuple[int, ...]] = (1, 2, 3, 4)
    templates: ClassVar[tuple[Template, ...]] = ARITH_TEMPLATES
    parallel: ClassVar[str] = "random"
    #: The authors' judge for their arithmetic tasks (README, "Fidelity to the authors' code").
    number_judge: ClassVar[str] = "math-verify"

    def tool_list(self) -> list[Tool]:
        """The 12 tools; stateless, so the same objects serve every episode."""
        return list(ARITH_TOOLS)


PACK = ArithPack()
