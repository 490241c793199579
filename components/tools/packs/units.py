"""Out-of-domain pack ``units``: unit conversion tools the training data never shows.

Tasks need 1 to 3 calls; comparing or combining two quantities needs two
independent conversions, which the expert issues together in one turn. Answers
are rounded to 2 decimal places, as every prompt says.
"""

from __future__ import annotations

import math
import random
from typing import Any, ClassVar, Literal

from components.tools.packs.plans import Answer, call, choice
from components.tools.packs.templated import Draft, Template, TemplatePack
from components.tools.tool import Tool, tool_from_function

LengthUnit = Literal["mm", "cm", "m", "km", "in", "ft", "yd", "mi"]
MassUnit = Literal["mg", "g", "kg", "t", "oz", "lb"]
VolumeUnit = Literal["ml", "l", "tsp", "tbsp", "cup", "pint", "gal"]
TemperatureUnit = Literal["C", "F", "K"]

METRES_PER = {"mm": 0.001, "cm": 0.01, "m": 1.0, "km": 1000.0, "in": 0.0254, "ft": 0.3048, "yd": 0.9144, "mi": 1609.344}
GRAMS_PER = {"mg": 0.001, "g": 1.0, "kg": 1000.0, "t": 1_000_000.0, "oz": 28.349523125, "lb": 453.59237}
MILLILITRES_PER = {
    "ml": 1.0,
    "l": 1000.0,
    "tsp": 4.92892159375,
    "tbsp": 14.78676478125,
    "cup": 236.5882365,
    "pint": 473.176473,
    "gal": 3785.411784,
}
MAX_MAGNITUDE = 1e100
DECIMALS = 2


def _finite(value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError("value must be a finite number")
    if abs(value) > MAX_MAGNITUDE:
        raise ValueError("value too large")
    return float(value)


def _convert(value: float, from_unit: str, to_unit: str, table: dict[str, float]) -> float:
    if from_unit not in table or to_unit not in table:
        raise ValueError(f"unknown unit; use one of {', '.join(table)}")
    return _finite(value) * table[from_unit] / table[to_unit]


def convert_length(value: float, from_unit: LengthUnit, to_unit: LengthUnit) -> float:
    """Convert a length between metric and imperial units.

    Args:
        value: The length to convert.
        from_unit: The unit of the given length.
        to_unit: The unit to convert to.
    """
    return _convert(value, from_unit, to_unit, METRES_PER)


def convert_mass(value: float, from_unit: MassUnit, to_unit: MassUnit) -> float:
    """Convert a mass (weight) between metric and imperial units; t is the metric tonne.

    Args:
        value: The mass to convert.
        from_unit: The unit of the given mass.
        to_unit: The unit to convert to.
    """
    return _convert(value, from_unit, to_unit, GRAMS_PER)


def convert_volume(value: float, from_unit: VolumeUnit, to_unit: VolumeUnit) -> float:
    """Convert a volume between metric units and US kitchen units.

    Args:
        value: The volume to convert.
        from_unit: The unit of the given volume.
        to_unit: The unit to convert to.
    """
    return _convert(value, from_unit, to_unit, MILLILITRES_PER)


def convert_temperature(value: float, from_unit: TemperatureUnit, to_unit: TemperatureUnit) -> float:
    """Convert a temperature between Celsius (C), Fahrenheit (F) and Kelvin (K).

    Args:
        value: The temperature to convert.
        from_unit: The scale of the given temperature.
        to_unit: The scale to convert to.
    """
    value = _finite(value)
    kelvin = {"C": lambda v: v + 273.15, "F": lambda v: (v - 32) * 5 / 9 + 273.15, "K": lambda v: v}[from_unit](value)
    if kelvin < -1e-9:
        raise ValueError("temperature below absolute zero")
    return {"C": lambda k: k - 273.15, "F": lambda k: (k - 273.15) * 9 / 5 + 32, "K": lambda k: k}[to_unit](kelvin)


def combine_quantities(values: list[float]) -> float:
    """Add up quantities that are already expressed in the same unit.

    Args:
        values: The quantities to add (at most 100).
    """
    if len(values) > 100:
        raise ValueError("at most 100 values")
    return math.fsum(_finite(v) for v in values)


UNIT_FUNCTIONS = (convert_length, convert_mass, convert_volume, convert_temperature, combine_quantities)
UNIT_TOOLS: tuple[Tool, ...] = tuple(tool_from_function(fn) for fn in UNIT_FUNCTIONS)

LENGTH_WORDS = {
    "mm": "millimetres",
    "cm": "centimetres",
    "m": "metres",
    "km": "kilometres",
    "in": "inches",
    "ft": "feet",
    "yd": "yards",
    "mi": "miles",
}
MASS_WORDS = {"mg": "milligrams", "g": "grams", "kg": "kilograms", "t": "tonnes", "oz": "ounces", "lb": "pounds"}
VOLUME_WORDS = {
    "ml": "millilitres",
    "l": "litres",
    "tsp": "teaspoons",
    "tbsp": "tablespoons",
    "cup": "cups",
    "pint": "pints",
    "gal": "gallons",
}
SCALE_WORDS = {"C": "degrees Celsius", "F": "degrees Fahrenheit", "K": "kelvin"}
ROUNDING = "Give the answer rounded to 2 decimal places."

P = dict[str, Any]


def _amount(rng: random.Random) -> float:
    return rng.choice((rng.randint(1, 500), rng.randint(1, 200) / 4, rng.randint(10, 9999) / 10))


def _sensible(rng: random.Random, table: dict[str, float]) -> tuple[float, str, str]:
    """A value and unit pair whose converted value is between 0.5 and 100000.

    Without this, "44 mm in yards, to 2 decimals" would be a valid but pointless task.
    """
    while True:
        src, dst = rng.sample(list(table), 2)
        value = _amount(rng)
        if 0.5 <= value * table[src] / table[dst] <= 100_000:
            return value, src, dst


def _larger(values: list[Any]) -> float:
    return max(float(v) for v in values)


# --- difficulty 1 --------------------------------------------------------------------


def _length_sample(rng: random.Random) -> P:
    value, src, dst = _sensible(rng, METRES_PER)
    return {"value": value, "src": src, "dst": dst, "style": rng.randint(0, 2)}


def _length_build(p: P) -> Draft:
    value, src, dst = p["value"], LENGTH_WORDS[p["src"]], LENGTH_WORDS[p["dst"]]
    prompt = (
        f"How many {dst} are there in {value:g} {src}?",
        f"A cable is {value:g} {src} long. Express its length in {dst}.",
        f"Convert {value:g} {src} to {dst}.",
    )[p["style"]]
    return Draft(
        f"{prompt} {ROUNDING}",
        call("convert_length", value=value, from_unit=p["src"], to_unit=p["dst"]),
        decimals=DECIMALS,
    )


def _mass_sample(rng: random.Random) -> P:
    value, src, dst = _sensible(rng, GRAMS_PER)
    return {"value": value, "src": src, "dst": dst}


def _mass_build(p: P) -> Draft:
    prompt = f"A parcel weighs {p['value']:g} {MASS_WORDS[p['src']]}. What is its weight in {MASS_WORDS[p['dst']]}? {ROUNDING}"
    return Draft(
        prompt, call("convert_mass", value=p["value"], from_unit=p["src"], to_unit=p["dst"]), decimals=DECIMALS
    )


def _volume_sample(rng: random.Random) -> P:
    value, src, dst = _sensible(rng, MILLILITRES_PER)
    return {"value": value, "src": src, "dst": dst}


def _volume_build(p: P) -> Draft:
    prompt = f"A recipe calls for {p['value']:g} {VOLUME_WORDS[p['src']]} of milk. How much is that in {VOLUME_WORDS[p['dst']]}? {ROUNDING}"
    return Draft(
        prompt, call("convert_volume", value=p["value"], from_unit=p["src"], to_unit=p["dst"]), decimals=DECIMALS
    )


def _temperature_sample(rng: random.Random) -> P:
    src, dst = rng.sample(list(SCALE_WORDS), 2)
    low = {"C": -40, "F": -40, "K": 240}[src]
    return {"value": rng.randint(low, low + 250), "src": src, "dst": dst}


def _temperature_build(p: P) -> Draft:
    value, src, dst = p["value"], p["src"], p["dst"]
    prompt = f"A lab thermometer reads {value} {SCALE_WORDS[src]}. What is that in {SCALE_WORDS[dst]}? {ROUNDING}"
    direct = call("convert_temperature", value=value, from_unit=src, to_unit=dst)
    via = next(s for s in SCALE_WORDS if s not in (src, dst))
    two_step = call(
        "convert_temperature",
        value=call("convert_temperature", value=value, from_unit=src, to_unit=via),
        from_unit=via,
        to_unit=dst,
    )
    # direct listed twice: the expert prefers the one-call route 2:1 but sometimes goes via the third scale
    return Draft(prompt, choice(direct, direct, two_step), decimals=DECIMALS)


# --- difficulty 2 --------------------------------------------------------------------


def _heavier_sample(rng: random.Random) -> P:
    return {"lb": rng.randint(2, 80) / 2, "kg": rng.randint(2, 80) / 2, "dst": rng.choice(("g", "oz"))}


def _heavier_build(p: P) -> Draft:
    prompt = (
        f"One suitcase weighs {p['lb']:g} pounds and another weighs {p['kg']:g} kilograms. "
        f"What is the weight of the heavier suitcase in {MASS_WORDS[p['dst']]}? {ROUNDING}"
    )
    first = call("convert_mass", value=p["lb"], from_unit="lb", to_unit=p["dst"])
    second = call("convert_mass", value=p["kg"], from_unit="kg", to_unit=p["dst"])
    return Draft(prompt, choice(Answer((first, second), _larger), Answer((second, first), _larger)), decimals=DECIMALS)


def _longer_sample(rng: random.Random) -> P:
    return {"miles": rng.randint(2, 60) / 2, "feet": rng.randint(5, 150) * 200}


def _longer_build(p: P) -> Draft:
    prompt = (
        f"Trail A is {p['miles']:g} miles long and trail B is {p['feet']} feet long. "
        f"How long is the longer trail, in kilometres? {ROUNDING}"
    )
    first = call("convert_length", value=p["miles"], from_unit="mi", to_unit="km")
    second = call("convert_length", value=p["feet"], from_unit="ft", to_unit="km")
    return Draft(prompt, Answer((first, second), _larger), decimals=DECIMALS)


def _luggage_sample(rng: random.Random) -> P:
    return {"lb": rng.randint(10, 60), "kg": rng.randint(4, 30) / 2}


def _luggage_build(p: P) -> Draft:
    prompt = f"A backpack weighs {p['lb']} pounds and a duffel bag weighs {p['kg']:g} kilograms. What do they weigh together, in kilograms? {ROUNDING}"
    converted = call("convert_mass", value=p["lb"], from_unit="lb", to_unit="kg")
    plan = choice(
        call("combine_quantities", values=[converted, p["kg"]]),
        call("combine_quantities", values=[p["kg"], converted]),
    )
    return Draft(prompt, plan, decimals=DECIMALS)


# --- difficulty 3 --------------------------------------------------------------------


def _height_sample(rng: random.Random) -> P:
    return {"feet": rng.randint(4, 6), "inches": rng.randint(1, 11)}


def _height_build(p: P) -> Draft:
    prompt = (
        f"A basketball player is {p['feet']} ft {p['inches']} in tall. What is that height in centimetres? {ROUNDING}"
    )
    feet_cm = call("convert_length", value=p["feet"], from_unit="ft", to_unit="cm")
    inches_cm = call("convert_length", value=p["inches"], from_unit="in", to_unit="cm")
    feet_in = call("convert_length", value=p["feet"], from_unit="ft", to_unit="in")
    plan = choice(
        call("combine_quantities", values=[feet_cm, inches_cm]),
        call("combine_quantities", values=[inches_cm, feet_cm]),
        call(
            "convert_length",
            value=call("combine_quantities", values=[feet_in, p["inches"]]),
            from_unit="in",
            to_unit="cm",
        ),
    )
    return Draft(prompt, plan, decimals=DECIMALS)


def _recipe_sample(rng: random.Random) -> P:
    return {"cups": rng.randint(1, 12) / 4, "tbsp": rng.randint(1, 8), "dst": rng.choice(("ml", "l"))}


def _recipe_build(p: P) -> Draft:
    prompt = (
        f"A sauce needs {p['cups']:g} cups of stock and {p['tbsp']} tablespoons of vinegar. "
        f"What is the total liquid volume in {VOLUME_WORDS[p['dst']]}? {ROUNDING}"
    )
    cups = call("convert_volume", value=p["cups"], from_unit="cup", to_unit=p["dst"])
    tbsp = call("convert_volume", value=p["tbsp"], from_unit="tbsp", to_unit=p["dst"])
    plan = choice(call("combine_quantities", values=[cups, tbsp]), call("combine_quantities", values=[tbsp, cups]))
    return Draft(prompt, plan, decimals=DECIMALS)


UNIT_TEMPLATES: tuple[Template, ...] = (
    Template("length", 1, _length_sample, _length_build),
    Template("mass", 1, _mass_sample, _mass_build),
    Template("volume", 1, _volume_sample, _volume_build),
    Template("temperature", 1, _temperature_sample, _temperature_build),
    Template("heavier", 2, _heavier_sample, _heavier_build),
    Template("longer", 2, _longer_sample, _longer_build),
    Template("luggage", 2, _luggage_sample, _luggage_build),
    Template("height", 3, _height_sample, _height_build),
    Template("recipe", 3, _recipe_sample, _recipe_build),
)


class UnitsPack(TemplatePack):
    """Unit conversions of length, mass, volume and temperature (out of domain)."""

    name: ClassVar[str] = "units"
    description: ClassVar[str] = (
        "You have unit conversion tools for length, mass, volume and temperature, and one to add up quantities in the same unit."
    )
    difficulties: ClassVar[tuple[int, ...]] = (1, 2, 3)
    templates: ClassVar[tuple[Template, ...]] = UNIT_TEMPLATES
    parallel: ClassVar[str] = "always"

    def tool_list(self) -> list[Tool]:
        """The five unit tools (stateless)."""
        return list(UNIT_TOOLS)


PACK = UnitsPack()
