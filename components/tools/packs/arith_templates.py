"""Word-problem templates for the ``arith`` pack, grouped by difficulty (= tool calls).

Each template is a ``sample`` (seeded parameters) and a ``build`` (prompt + plan).
Plans list every reasonable way to solve the problem with the 12 tools as
``choice(...)`` options, canonical first, so the scripted expert can vary its
tool sequence the way a real teacher would.
"""

from __future__ import annotations

import random
from typing import Any

from components.tools.packs.plans import Call, call, choice
from components.tools.packs.templated import Draft, Template

P = dict[str, Any]

NAMES = (
    "Ana",
    "Ben",
    "Chen",
    "Dara",
    "Eli",
    "Fatima",
    "Gus",
    "Hana",
    "Ivan",
    "Jo",
    "Kofi",
    "Lena",
    "Mateo",
    "Nia",
    "Omar",
    "Priya",
    "Rosa",
    "Sam",
    "Tariq",
    "Uma",
)
ITEMS = (
    "notebook",
    "pen",
    "backpack",
    "lamp",
    "mug",
    "scarf",
    "puzzle",
    "candle",
    "plant",
    "book",
    "cap",
    "umbrella",
    "ball",
    "kite",
)
THINGS = ("stickers", "apples", "pencils", "cards", "marbles", "cookies", "beads", "stamps")
PLACES = ("garden", "patio", "classroom floor", "parking lot", "vegetable bed", "rug")
CITIES = ("Oslo", "Lima", "Cairo", "Perth", "Quito", "Riga", "Seoul", "Tunis", "Vienna", "Dakar")


def money(rng: random.Random, low: int, high: int) -> float:
    """A price in dollars between ``low`` and ``high``, in quarters (e.g. 12.75)."""
    return rng.randint(low * 4, high * 4) / 4


def usd(value: float) -> str:
    """``12.5`` -> ``$12.50``."""
    return f"${value:,.2f}"


def _pair_sum(a: Any, b: Any) -> Any:
    """a + b as add in either order or sum_numbers."""
    return choice(call("add", a=a, b=b), call("add", a=b, b=a), call("sum_numbers", numbers=[a, b]))


def _product(a: Any, b: Any) -> Any:
    return choice(call("multiply", a=a, b=b), call("multiply", a=b, b=a))


def _square(x: Any) -> Any:
    return choice(call("power", base=x, exponent=2), call("multiply", a=x, b=x))


# --- difficulty 1 --------------------------------------------------------------------


def _shopping_pair_sample(rng: random.Random) -> P:
    item1, item2 = rng.sample(ITEMS, 2)
    return {"name": rng.choice(NAMES), "item1": item1, "item2": item2, "p1": money(rng, 1, 40), "p2": money(rng, 1, 40)}


def _shopping_pair_build(p: P) -> Draft:
    prompt = f"{p['name']} buys a {p['item1']} for {usd(p['p1'])} and a {p['item2']} for {usd(p['p2'])}. How much does {p['name']} spend in total, in dollars?"
    return Draft(prompt, _pair_sum(p["p1"], p["p2"]))


def _change_left_sample(rng: random.Random) -> P:
    have = rng.randint(20, 100)
    return {
        "name": rng.choice(NAMES),
        "item": rng.choice(ITEMS),
        "have": have,
        "spend": rng.randint(4, have * 4 - 1) / 4,
    }


def _change_left_build(p: P) -> Draft:
    prompt = f"{p['name']} has {usd(p['have'])} and spends {usd(p['spend'])} on a {p['item']}. How many dollars does {p['name']} have left?"
    return Draft(prompt, call("subtract", a=p["have"], b=p["spend"]))


def _rect_area_sample(rng: random.Random) -> P:
    return {"place": rng.choice(PLACES), "a": rng.randint(3, 40), "b": rng.randint(3, 40)}


def _rect_area_build(p: P) -> Draft:
    prompt = f"A rectangular {p['place']} is {p['a']} m long and {p['b']} m wide. What is its area in square metres?"
    return Draft(prompt, _product(p["a"], p["b"]))


def _equal_share_sample(rng: random.Random) -> P:
    people = rng.randint(2, 12)
    return {"things": rng.choice(THINGS), "people": people, "total": people * rng.randint(2, 25)}


def _equal_share_build(p: P) -> Draft:
    prompt = f"{p['total']} {p['things']} are shared equally among {p['people']} children. How many {p['things']} does each child get?"
    return Draft(prompt, call("divide", a=p["total"], b=p["people"]))


def _leftover_sample(rng: random.Random) -> P:
    size = rng.randint(4, 12)
    total = rng.randint(3, 30) * size + rng.randint(1, size - 1)
    return {"name": rng.choice(NAMES), "size": size, "total": total}


def _leftover_build(p: P) -> Draft:
    prompt = f"{p['name']} packs {p['total']} eggs into cartons that hold {p['size']} eggs each, filling as many cartons as possible. How many eggs are left over?"
    return Draft(prompt, call("modulo", a=p["total"], b=p["size"]))


def _square_side_sample(rng: random.Random) -> P:
    return {"side": rng.randint(2, 30), "thing": rng.choice(("tile", "field", "window", "quilt"))}


def _square_side_build(p: P) -> Draft:
    area = p["side"] ** 2
    prompt = f"A square {p['thing']} has an area of {area} square centimetres. How long is one side, in centimetres?"
    return Draft(prompt, call("sqrt", x=area))


def _temperature_rise_sample(rng: random.Random) -> P:
    start = rng.randint(-20, 10)
    return {"start": start, "end": start + rng.randint(1, 25)}


def _temperature_rise_build(p: P) -> Draft:
    prompt = f"At dawn the temperature was {p['start']} °C and by noon it was {p['end']} °C. By how many degrees did it rise?"
    return Draft(prompt, call("subtract", a=p["end"], b=p["start"]))


def _growth_sample(rng: random.Random) -> P:
    factor = rng.choice((2, 3))
    return {"factor": factor, "steps": rng.randint(3, 20 if factor == 2 else 12)}


def _growth_build(p: P) -> Draft:
    word = {2: "doubles", 3: "triples"}[p["factor"]]
    prompt = f"A colony of bacteria starts as a single cell and {word} every hour. How many cells are there after {p['steps']} hours?"
    return Draft(prompt, call("power", base=p["factor"], exponent=p["steps"]))


def _descent_sample(rng: random.Random) -> P:
    return {"name": rng.choice(NAMES), "change": -rng.randint(20, 900)}


def _descent_build(p: P) -> Draft:
    prompt = f"{p['name']}'s altimeter logged an elevation change of {p['change']} m on the way down a hill. How many metres did {p['name']} descend?"
    return Draft(prompt, call("abs_value", x=p["change"]))


# --- difficulty 2 --------------------------------------------------------------------


def _pay_change_sample(rng: random.Random) -> P:
    qty, price = rng.randint(2, 8), money(rng, 1, 15)
    bill = next(b for b in (20, 50, 100, 200) if b > qty * price)
    return {"name": rng.choice(NAMES), "item": rng.choice(ITEMS), "qty": qty, "price": price, "bill": bill}


def _pay_change_build(p: P) -> Draft:
    prompt = f"{p['name']} buys {p['qty']} {p['item']}s at {usd(p['price'])} each and pays with a {usd(p['bill'])} bill. How much change, in dollars, does {p['name']} get?"
    return Draft(prompt, call("subtract", a=p["bill"], b=_product(p["qty"], p["price"])))


def _buses_sample(rng: random.Random) -> P:
    capacity = rng.randint(20, 60)
    return {"students": rng.randint(1, 9) * capacity + rng.randint(1, capacity - 1), "capacity": capacity}


def _buses_build(p: P) -> Draft:
    prompt = f"{p['students']} students are going on a trip and each bus seats {p['capacity']}. How many buses are needed so that every student has a seat?"
    return Draft(prompt, call("ceil", x=call("divide", a=p["students"], b=p["capacity"])))


def _full_boxes_sample(rng: random.Random) -> P:
    size = rng.randint(6, 24)
    return {"things": rng.choice(THINGS), "total": rng.randint(2, 20) * size + rng.randint(1, size - 1), "size": size}


def _full_boxes_build(p: P) -> Draft:
    prompt = f"A shop has {p['total']} {p['things']} and puts them in boxes of {p['size']}. How many boxes can be completely filled?"
    return Draft(prompt, call("floor", x=call("divide", a=p["total"], b=p["size"])))


def _savings_sample(rng: random.Random) -> P:
    return {
        "name": rng.choice(NAMES),
        "start": rng.randint(0, 200),
        "weekly": rng.randint(5, 50),
        "weeks": rng.randint(2, 20),
    }


def _savings_build(p: P) -> Draft:
    prompt = f"{p['name']} has {usd(p['start'])} saved and adds {usd(p['weekly'])} every week. How many dollars will {p['name']} have after {p['weeks']} weeks?"
    saved = _product(p["weekly"], p["weeks"])
    return Draft(prompt, choice(call("add", a=p["start"], b=saved), call("add", a=saved, b=p["start"])))


def _perimeter_sample(rng: random.Random) -> P:
    return {"place": rng.choice(PLACES), "length": rng.randint(3, 60), "width": rng.randint(3, 60)}


def _perimeter_build(p: P) -> Draft:
    length, width = p["length"], p["width"]
    prompt = f"A fence goes all the way around a rectangular {p['place']} that is {length} m long and {width} m wide. How many metres of fence are needed?"
    plan = choice(
        call("multiply", a=2, b=_pair_sum(length, width)),
        call("add", a=call("multiply", a=2, b=length), b=call("multiply", a=2, b=width)),
        call("sum_numbers", numbers=[length, width, length, width]),
    )
    return Draft(prompt, plan)


def _temp_gap_sample(rng: random.Random) -> P:
    city1, city2 = rng.sample(CITIES, 2)
    return {"city1": city1, "city2": city2, "t1": rng.randint(-15, 40), "t2": rng.randint(-15, 40)}


def _temp_gap_build(p: P) -> Draft:
    prompt = f"Yesterday's high was {p['t1']} °C in {p['city1']} and {p['t2']} °C in {p['city2']}. How many degrees apart were the two highs?"
    gap = choice(call("subtract", a=p["t1"], b=p["t2"]), call("subtract", a=p["t2"], b=p["t1"]))
    return Draft(prompt, call("abs_value", x=gap))


def _three_scores_sample(rng: random.Random) -> P:
    return {"name": rng.choice(NAMES), "scores": [rng.randint(5, 60) for _ in range(3)]}


def _three_scores_build(p: P) -> Draft:
    a, b, c = p["scores"]
    prompt = f"{p['name']} scored {a}, {b} and {c} points in three basketball games. How many points did {p['name']} score in total?"
    plan = choice(
        call("add", a=call("add", a=a, b=b), b=c),
        call("add", a=a, b=call("add", a=b, b=c)),
        call("sum_numbers", numbers=[a, b, c]),
    )
    return Draft(prompt, plan)


# --- difficulty 3 --------------------------------------------------------------------


def _two_items_sample(rng: random.Random) -> P:
    item1, item2 = rng.sample(ITEMS, 2)
    return {
        "item1": item1,
        "item2": item2,
        "q1": rng.randint(2, 9),
        "q2": rng.randint(2, 9),
        "p1": money(rng, 1, 20),
        "p2": money(rng, 1, 20),
    }


def _two_items_build(p: P) -> Draft:
    prompt = (
        f"A class orders {p['q1']} {p['item1']}s at {usd(p['p1'])} each and {p['q2']} {p['item2']}s at {usd(p['p2'])} each. "
        "What is the total cost in dollars?"
    )
    return Draft(prompt, _pair_sum(_product(p["q1"], p["p1"]), _product(p["q2"], p["p2"])))


def _discount_sample(rng: random.Random) -> P:
    return {
        "item": rng.choice(ITEMS),
        "price": rng.randint(20, 200),
        "percent": rng.choice((5, 10, 15, 20, 25, 30, 40, 50)),
    }


def _discount_build(p: P) -> Draft:
    price, pct = p["price"], p["percent"]
    prompt = f"A {p['item']} costs {usd(price)} and is on sale for {pct}% off. What is the sale price in dollars?"
    plan = choice(
        call("subtract", a=price, b=call("divide", a=call("multiply", a=price, b=pct), b=100)),
        call("multiply", a=price, b=call("divide", a=call("subtract", a=100, b=pct), b=100)),
        call("subtract", a=price, b=call("multiply", a=price, b=call("divide", a=pct, b=100))),
    )
    return Draft(prompt, plan)


def _average_sample(rng: random.Random) -> P:
    return {"name": rng.choice(NAMES), "scores": [rng.randint(50, 100) for _ in range(3)]}


def _average_build(p: P) -> Draft:
    a, b, c = p["scores"]
    prompt = (
        f"{p['name']} got {a}, {b} and {c} on three tests. What is the average score, rounded to one decimal place?"
    )
    total = choice(call("sum_numbers", numbers=[a, b, c]), call("add", a=call("add", a=a, b=b), b=c))
    return Draft(prompt, call("round_number", x=call("divide", a=total, b=3), ndigits=1))


def _share_rest_sample(rng: random.Random) -> P:
    total = rng.randint(60, 300)
    return {"friends": rng.randint(3, 8), "total": total, "cost": rng.randint(10, total - 30)}


def _share_rest_build(p: P) -> Draft:
    prompt = (
        f"{p['friends']} friends pool {usd(p['total'])}. They spend {usd(p['cost'])} on concert tickets and split what is left "
        "equally, handing out whole dollars only. How many whole dollars does each friend get?"
    )
    rest = call("subtract", a=p["total"], b=p["cost"])
    return Draft(prompt, call("floor", x=call("divide", a=rest, b=p["friends"])))


def _goal_sample(rng: random.Random) -> P:
    goal = rng.randint(20, 100) * 10
    return {"name": rng.choice(NAMES), "goal": goal, "have": rng.randint(0, goal - 50), "weekly": rng.randint(15, 60)}


def _goal_build(p: P) -> Draft:
    prompt = (
        f"{p['name']} wants a bike that costs {usd(p['goal'])}, already has {usd(p['have'])} and saves {usd(p['weekly'])} a week. "
        "How many weeks of saving are needed to afford the bike?"
    )
    missing = call("subtract", a=p["goal"], b=p["have"])
    return Draft(prompt, call("ceil", x=call("divide", a=missing, b=p["weekly"])))


def _l_shape_sample(rng: random.Random) -> P:
    return {"a": rng.randint(3, 20), "b": rng.randint(3, 20), "c": rng.randint(2, 15), "d": rng.randint(2, 15)}


def _l_shape_build(p: P) -> Draft:
    prompt = (
        f"An L-shaped room is made of two rectangles: one {p['a']} m by {p['b']} m and one {p['c']} m by {p['d']} m. "
        "What is the total floor area in square metres?"
    )
    return Draft(prompt, _pair_sum(_product(p["a"], p["b"]), _product(p["c"], p["d"])))


# --- difficulty 4 --------------------------------------------------------------------


def _change_two_sample(rng: random.Random) -> P:
    item1, item2 = rng.sample(ITEMS, 2)
    q1, q2, p1, p2 = rng.randint(2, 6), rng.randint(2, 6), money(rng, 1, 12), money(rng, 1, 12)
    bill = next(b for b in (50, 100, 200) if b > q1 * p1 + q2 * p2)
    return {
        "name": rng.choice(NAMES),
        "item1": item1,
        "item2": item2,
        "q1": q1,
        "q2": q2,
        "p1": p1,
        "p2": p2,
        "bill": bill,
    }


def _change_two_build(p: P) -> Draft:
    prompt = (
        f"{p['name']} buys {p['q1']} {p['item1']}s at {usd(p['p1'])} each and {p['q2']} {p['item2']}s at {usd(p['p2'])} each, "
        f"paying with a {usd(p['bill'])} bill. How much change, in dollars, does {p['name']} get?"
    )
    m1: Call = call("multiply", a=p["q1"], b=p["p1"])
    m2: Call = call("multiply", a=p["q2"], b=p["p2"])
    plan = choice(
        call("subtract", a=p["bill"], b=_pair_sum(m1, m2)),
        call("subtract", a=call("subtract", a=p["bill"], b=m1), b=m2),
        call("subtract", a=call("subtract", a=p["bill"], b=m2), b=m1),
    )
    return Draft(prompt, plan)


_TRIPLES = ((3, 4), (5, 12), (8, 15), (7, 24), (20, 21))


def _walk_sample(rng: random.Random) -> P:
    a, b = rng.choice(_TRIPLES)
    k = rng.randint(1, 12)
    if rng.random() < 0.5:
        a, b = b, a
    return {"name": rng.choice(NAMES), "east": a * k, "north": b * k}


def _walk_build(p: P) -> Draft:
    prompt = f"{p['name']} walks {p['east']} m due east and then {p['north']} m due north. How far, in metres, is {p['name']} from the start in a straight line?"
    return Draft(prompt, call("sqrt", x=_pair_sum(_square(p["east"]), _square(p["north"]))))


def _compound_sample(rng: random.Random) -> P:
    return {
        "name": rng.choice(NAMES),
        "principal": rng.randint(2, 100) * 50,
        "percent": rng.choice((2, 3, 4, 5, 6, 8, 10)),
        "years": rng.randint(2, 10),
    }


def _compound_build(p: P) -> Draft:
    rate = p["percent"] / 100
    prompt = (
        f"{p['name']} deposits {usd(p['principal'])} in an account paying {p['percent']}% interest per year, compounded yearly "
        f"(the balance is multiplied by 1 + {rate:g} each year). What is the balance after {p['years']} years, rounded to the cent?"
    )
    growth = call("power", base=call("add", a=1, b=rate), exponent=p["years"])
    return Draft(prompt, call("round_number", x=_product(p["principal"], growth), ndigits=2))


def _tiles_sample(rng: random.Random) -> P:
    return {"length": rng.randint(2, 12), "width": rng.randint(2, 12), "tile": rng.choice((0.25, 0.3, 0.4, 0.5, 0.6))}


def _tiles_build(p: P) -> Draft:
    prompt = (
        f"A floor is {p['length']} m by {p['width']} m and is covered with square tiles {p['tile']:g} m on a side. "
        "Counting cut tiles as whole tiles, how many tiles are needed (floor area divided by tile area, rounded up)?"
    )
    area = _product(p["length"], p["width"])
    return Draft(prompt, call("ceil", x=call("divide", a=area, b=_square(p["tile"]))))


def _party_sample(rng: random.Random) -> P:
    return {
        "pizzas": rng.randint(2, 10),
        "price": money(rng, 8, 20),
        "fee": money(rng, 2, 8),
        "people": rng.randint(3, 12),
    }


def _party_build(p: P) -> Draft:
    prompt = (
        f"A group orders {p['pizzas']} pizzas at {usd(p['price'])} each plus a {usd(p['fee'])} delivery fee. "
        f"The {p['people']} people split the bill equally, each paying a whole number of dollars, rounded up. How many dollars does each person pay?"
    )
    total = _pair_sum(_product(p["pizzas"], p["price"]), p["fee"])
    return Draft(prompt, call("ceil", x=call("divide", a=total, b=p["people"])))


def _temp_avg_gap_sample(rng: random.Random) -> P:
    return {"city": rng.choice(CITIES), "week": [rng.randint(-5, 30) for _ in range(5)], "today": rng.randint(-5, 35)}


def _temp_avg_gap_build(p: P) -> Draft:
    week = p["week"]
    listed = ", ".join(str(t) for t in week)
    prompt = (
        f"The noon temperatures in {p['city']} over five days were {listed} °C. Today it is {p['today']} °C. "
        "How many degrees is today's temperature away from the five-day average?"
    )
    average = call("divide", a=call("sum_numbers", numbers=list(week)), b=len(week))
    gap = choice(call("subtract", a=p["today"], b=average), call("subtract", a=average, b=p["today"]))
    return Draft(prompt, call("abs_value", x=gap))


ARITH_TEMPLATES: tuple[Template, ...] = (
    Template("shopping_pair", 1, _shopping_pair_sample, _shopping_pair_build),
    Template("change_left", 1, _change_left_sample, _change_left_build),
    Template("rect_area", 1, _rect_area_sample, _rect_area_build),
    Template("equal_share", 1, _equal_share_sample, _equal_share_build),
    Template("leftover", 1, _leftover_sample, _leftover_build),
    Template("square_side", 1, _square_side_sample, _square_side_build),
    Template("temperature_rise", 1, _temperature_rise_sample, _temperature_rise_build),
    Template("growth", 1, _growth_sample, _growth_build),
    Template("descent", 1, _descent_sample, _descent_build),
    Template("pay_change", 2, _pay_change_sample, _pay_change_build),
    Template("buses", 2, _buses_sample, _buses_build),
    Template("full_boxes", 2, _full_boxes_sample, _full_boxes_build),
    Template("savings", 2, _savings_sample, _savings_build),
    Template("perimeter", 2, _perimeter_sample, _perimeter_build),
    Template("temp_gap", 2, _temp_gap_sample, _temp_gap_build),
    Template("three_scores", 2, _three_scores_sample, _three_scores_build),
    Template("two_items", 3, _two_items_sample, _two_items_build),
    Template("discount", 3, _discount_sample, _discount_build),
    Template("average", 3, _average_sample, _average_build),
    Template("share_rest", 3, _share_rest_sample, _share_rest_build),
    Template("savings_goal", 3, _goal_sample, _goal_build),
    Template("l_shape", 3, _l_shape_sample, _l_shape_build),
    Template("change_two", 4, _change_two_sample, _change_two_build),
    Template("walk", 4, _walk_sample, _walk_build),
    Template("compound", 4, _compound_sample, _compound_build),
    Template("tiles", 4, _tiles_sample, _tiles_build),
    Template("party", 4, _party_sample, _party_build),
    Template("temp_avg_gap", 4, _temp_avg_gap_sample, _temp_avg_gap_build),
)
