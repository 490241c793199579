"""Out-of-domain, stateful pack ``store``: a small bank with accounts and transfers.

Each episode gets its own copy of the task's accounts; the tools change that copy,
and the verifier checks the final balances as well as the answer, so a model
that answers right but moves money wrongly (or twice) fails. Amounts are dollars
with cents; balances are kept rounded to the cent.
"""

from __future__ import annotations

import json
import math
import random
from typing import Any, ClassVar

from components.tools.base import ToolEnv
from components.tools.packs.plans import Answer, call, choice
from components.tools.packs.templated import Draft, Template, TemplatePack
from components.tools.tool import Tool, tool_from_function

MAX_AMOUNT = 1e9
ACCOUNT_NAMES = ("alice", "bob", "carol", "dan", "erin", "frank", "grace", "heidi")


class Bank:
    """Account operations over a JSON-able state ``{"accounts": {name: balance}}``."""

    def __init__(self, state: dict) -> None:
        self.state = state
        accounts = state.setdefault("accounts", {})
        if not isinstance(accounts, dict):
            raise ValueError("state['accounts'] must be a mapping of account name to balance")
        self.accounts: dict[str, float] = accounts

    def _account(self, account: str) -> str:
        if account not in self.accounts:
            known = ", ".join(sorted(self.accounts)) or "none"
            raise ValueError(f"no account named {str(account)[:40]!r}; accounts: {known}")
        return account

    @staticmethod
    def _amount(amount: float) -> float:
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not math.isfinite(amount):
            raise ValueError("amount must be a finite number")
        cents = round(float(amount), 2)
        if cents <= 0:
            raise ValueError("amount must be positive")
        if cents > MAX_AMOUNT:
            raise ValueError("amount too large")
        return cents

    def list_accounts(self) -> dict[str, float]:
        """List every account with its current balance in dollars."""
        return dict(sorted(self.accounts.items()))

    def get_balance(self, account: str) -> float:
        """The current balance of an account, in dollars.

        Args:
            account: The account name, e.g. "alice".
        """
        return self.accounts[self._account(account)]

    def deposit(self, account: str, amount: float) -> float:
        """Put money into an account; returns the new balance.

        Args:
            account: The account name.
            amount: The amount in dollars (positive).
        """
        name, cents = self._account(account), self._amount(amount)
        self.accounts[name] = round(self.accounts[name] + cents, 2)
        return self.accounts[name]

    def withdraw(self, account: str, amount: float) -> float:
        """Take money out of an account; returns the new balance.

        Args:
            account: The account name.
            amount: The amount in dollars (positive, at most the balance).
        """
        name, cents = self._account(account), self._amount(amount)
        if cents > self.accounts[name] + 1e-9:
            raise ValueError(f"insufficient funds: {name} has {self.accounts[name]:.2f}")
        self.accounts[name] = round(self.accounts[name] - cents, 2)
        return self.accounts[name]

    def transfer(self, source: str, target: str, amount: float) -> str:
        """Move money from one account to another; returns a confirmation.

        Args:
            source: The account the money leaves.
            target: The account the money goes to.
            amount: The amount in dollars (positive, at most the source balance).
        """
        src, dst, cents = self._account(source), self._account(target), self._amount(amount)
        if src == dst:
            raise ValueError("source and target must be different accounts")
        if cents > self.accounts[src] + 1e-9:
            raise ValueError(f"insufficient funds: {src} has {self.accounts[src]:.2f}")
        self.accounts[src] = round(self.accounts[src] - cents, 2)
        self.accounts[dst] = round(self.accounts[dst] + cents, 2)
        return f"Transferred {cents:.2f} from {src} to {dst}."

    def tools(self) -> list[Tool]:
        """This bank's operations as tools bound to its state.

        Schemas are derived once and shared by every bank: they do not depend on
        the state, and sharing them lets the executor reuse compiled validators.
        """
        return [
            Tool(name=tool.name, fn=getattr(self, tool.name), schema=tool.schema) for tool in _bank_tool_templates()
        ]


_OPERATIONS = ("list_accounts", "get_balance", "deposit", "withdraw", "transfer")
_TEMPLATE_TOOLS: list[Tool] = []


def _bank_tool_templates() -> list[Tool]:
    """The bank tools with their schemas, built on first use from a throwaway bank."""
    if not _TEMPLATE_TOOLS:
        throwaway = Bank({"accounts": {}})
        _TEMPLATE_TOOLS.extend(tool_from_function(getattr(throwaway, name)) for name in _OPERATIONS)
    return _TEMPLATE_TOOLS


P = dict[str, Any]


def _accounts(rng: random.Random, count: int) -> dict[str, float]:
    """``count`` accounts with distinct balances (so "who has most" has one answer)."""
    names = rng.sample(ACCOUNT_NAMES, count)
    cents = rng.sample(range(2000, 200000), count)
    return {name: value / 100 for name, value in zip(names, cents, strict=True)}


def _cents(rng: random.Random, low: int, high: int) -> float:
    return rng.randint(low * 4, high * 4) / 4


def _richest(values: list[Any]) -> str:
    balances = json.loads(values[0])
    return max(balances, key=lambda name: balances[name])


def _balance_of(name: str) -> Any:
    return lambda values: json.loads(values[0])[name]


def _larger_name(first: str, second: str) -> Any:
    return lambda values: first if float(values[0]) > float(values[1]) else second


def _name_of_larger(first: str, second: str) -> Any:
    return lambda values: first if json.loads(values[0])[first] > json.loads(values[0])[second] else second


def _first(values: list[Any]) -> Any:
    return values[0]


# --- difficulty 1 --------------------------------------------------------------------


def _balance_sample(rng: random.Random) -> P:
    accounts = _accounts(rng, rng.randint(2, 5))
    return {"accounts": accounts, "who": rng.choice(sorted(accounts))}


def _balance_build(p: P) -> Draft:
    prompt = f"What is the current balance, in dollars, of the account '{p['who']}'?"
    return Draft(prompt, call("get_balance", account=p["who"]), initial_state={"accounts": dict(p["accounts"])})


def _deposit_sample(rng: random.Random) -> P:
    accounts = _accounts(rng, rng.randint(2, 5))
    return {"accounts": accounts, "who": rng.choice(sorted(accounts)), "amount": _cents(rng, 5, 500)}


def _deposit_build(p: P) -> Draft:
    prompt = (
        f"Deposit ${p['amount']:.2f} into the account '{p['who']}', then tell me the account's new balance in dollars."
    )
    return Draft(
        prompt, call("deposit", account=p["who"], amount=p["amount"]), initial_state={"accounts": dict(p["accounts"])}
    )


def _richest_sample(rng: random.Random) -> P:
    return {"accounts": _accounts(rng, rng.randint(3, 6))}


def _richest_build(p: P) -> Draft:
    prompt = "Which account currently holds the most money? Answer with the account name."
    return Draft(
        prompt,
        Answer((call("list_accounts"),), _richest),
        initial_state={"accounts": dict(p["accounts"])},
        answer_kind="text",
    )


# --- difficulty 2 --------------------------------------------------------------------


def _transfer_sample(rng: random.Random) -> P:
    accounts = _accounts(rng, rng.randint(2, 5))
    source, target = rng.sample(sorted(accounts), 2)
    return {"accounts": accounts, "source": source, "target": target, "amount": _cents(rng, 1, int(accounts[source]))}


def _transfer_build(p: P) -> Draft:
    prompt = f"Transfer ${p['amount']:.2f} from '{p['source']}' to '{p['target']}'. What is the balance of '{p['target']}' afterwards, in dollars?"
    moved = call("transfer", source=p["source"], target=p["target"], amount=p["amount"])
    plan = choice(
        call("get_balance", _after=(moved,), account=p["target"]),
        Answer((call("list_accounts", _after=(moved,)),), _balance_of(p["target"])),
    )
    return Draft(prompt, plan, initial_state={"accounts": dict(p["accounts"])})


def _compare_sample(rng: random.Random) -> P:
    accounts = _accounts(rng, rng.randint(2, 5))
    first, second = rng.sample(sorted(accounts), 2)
    return {"accounts": accounts, "first": first, "second": second}


def _compare_build(p: P) -> Draft:
    first, second = p["first"], p["second"]
    prompt = f"Who has more money right now, '{first}' or '{second}'? Answer with the account name."
    both = Answer(
        (call("get_balance", account=first), call("get_balance", account=second)), _larger_name(first, second)
    )
    listing = Answer((call("list_accounts"),), _name_of_larger(first, second))
    return Draft(
        prompt, choice(both, both, listing), initial_state={"accounts": dict(p["accounts"])}, answer_kind="text"
    )


# --- difficulty 3 --------------------------------------------------------------------


def _rent_sample(rng: random.Random) -> P:
    accounts = _accounts(rng, rng.randint(2, 4))
    accounts["landlord"] = rng.randint(0, 500000) / 100
    tenant = rng.choice(sorted(a for a in accounts if a != "landlord"))
    accounts[tenant] = max(accounts[tenant], 900.0)
    return {"accounts": accounts, "tenant": tenant, "rent": _cents(rng, 300, 900), "salary": _cents(rng, 800, 4000)}


def _rent_build(p: P) -> Draft:
    tenant, rent, salary = p["tenant"], p["rent"], p["salary"]
    prompt = (
        f"Two things happened today: ${rent:.2f} of rent was paid from '{tenant}' to 'landlord', and a salary of ${salary:.2f} "
        f"was deposited into '{tenant}'. Record both, then tell me the balance of '{tenant}' in dollars."
    )
    pay_first = call("transfer", source=tenant, target="landlord", amount=rent)
    salary_last = call("deposit", _after=(pay_first,), account=tenant, amount=salary)
    salary_first = call("deposit", account=tenant, amount=salary)
    pay_last = call("transfer", _after=(salary_first,), source=tenant, target="landlord", amount=rent)
    pay_any = call("transfer", source=tenant, target="landlord", amount=rent)
    salary_any = call("deposit", account=tenant, amount=salary)
    plan = choice(
        salary_last,
        call("get_balance", _after=(pay_last,), account=tenant),
        call("get_balance", _after=(pay_any, salary_any), account=tenant),
    )
    return Draft(prompt, plan, initial_state={"accounts": dict(p["accounts"])})


def _collect_sample(rng: random.Random) -> P:
    accounts = _accounts(rng, rng.randint(3, 5))
    first, second, target = rng.sample(sorted(accounts), 3)
    return {
        "accounts": accounts,
        "first": first,
        "second": second,
        "target": target,
        "a1": _cents(rng, 1, int(accounts[first])),
        "a2": _cents(rng, 1, int(accounts[second])),
    }


def _collect_build(p: P) -> Draft:
    prompt = (
        f"'{p['first']}' sends ${p['a1']:.2f} and '{p['second']}' sends ${p['a2']:.2f} to '{p['target']}'. "
        f"Make both transfers and report the balance of '{p['target']}' in dollars."
    )
    one = call("transfer", source=p["first"], target=p["target"], amount=p["a1"])
    two = call("transfer", source=p["second"], target=p["target"], amount=p["a2"])
    plan = choice(
        call("get_balance", _after=(one, two), account=p["target"]),
        Answer((call("list_accounts", _after=(one, two)),), _balance_of(p["target"])),
    )
    return Draft(prompt, plan, initial_state={"accounts": dict(p["accounts"])})


STORE_TEMPLATES: tuple[Template, ...] = (
    Template("balance", 1, _balance_sample, _balance_build),
    Template("deposit", 1, _deposit_sample, _deposit_build),
    Template("richest", 1, _richest_sample, _richest_build),
    Template("transfer_check", 2, _transfer_sample, _transfer_build),
    Template("compare", 2, _compare_sample, _compare_build),
    Template("rent", 3, _rent_sample, _rent_build),
    Template("collect", 3, _collect_sample, _collect_build),
)


class StorePack(TemplatePack):
    """A stateful bank: balances, deposits, withdrawals and transfers (out of domain)."""

    name: ClassVar[str] = "store"
    description: ClassVar[str] = (
        "You manage bank accounts with tools that read balances and move money. Every deposit, withdrawal and transfer "
        "really changes the accounts, so make each requested change exactly once."
    )
    difficulties: ClassVar[tuple[int, ...]] = (1, 2, 3)
    templates: ClassVar[tuple[Template, ...]] = STORE_TEMPLATES
    parallel: ClassVar[str] = "always"
    stateful: ClassVar[bool] = True

    def tool_list(self) -> list[Tool]:
        """The five bank tools, bound to an empty throwaway bank (for schemas)."""
        return Bank({"accounts": {}}).tools()

    def make_env(self, state: dict | None) -> ToolEnv:
        """An environment whose tools act on ``state`` (the episode's own copy)."""
        live = state if state is not None else {"accounts": {}}
        return ToolEnv(Bank(live).tools(), state=live)


PACK = StorePack()
