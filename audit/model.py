"""Core audit data types: severities, findings, the rule base class and the rule registry.

This module is the contract between rule families (audit/rules/*.py), the engine that
runs them and the reporters. It imports nothing heavy (never torch).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from audit.context import AuditContext

CONDITIONS = ("C1", "C2", "C3", "C4", "R1", "R2", "R3", "R4", "R5", "R6", "R7", "R8", "R9")


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        return {"info": 0, "warning": 1, "error": 2}[self.value]


@dataclass(frozen=True)
class Finding:
    """One fact a rule established, with evidence a maintainer can check in seconds."""

    rule: str
    condition: str
    severity: Severity
    message: str
    file: str | None = None
    line: int | None = None
    function: str | None = None
    evidence: str | None = None
    # Set when a justified suppression applies: the finding is kept in the report,
    # shown with its justification, and no longer counts towards the verdict.
    suppressed: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["severity"] = self.severity.value
        return data


class Rule:
    """Base class of every rule. Subclasses set the class attributes and implement check().

    The class docstring is the rule's documentation (`pgolf audit --explain ID`), written
    with the ruff headings: What it does, Why is this bad?, Illegal example, Legal example,
    References.
    """

    id: ClassVar[str]
    name: ClassVar[str]  # kebab-case, e.g. "target-conditioned-mixing"
    condition: ClassVar[str]  # one of CONDITIONS
    severity: ClassVar[Severity] = Severity.ERROR
    message: ClassVar[str] = ""  # template, formatted with keyword arguments in finding()
    old_ids: ClassVar[tuple[str, ...]] = ()

    def check(self, ctx: AuditContext) -> Iterable[Finding]:
        raise NotImplementedError

    def finding(
        self,
        *,
        file: str | None = None,
        line: int | None = None,
        function: str | None = None,
        evidence: str | None = None,
        severity: Severity | None = None,
        message: str | None = None,
        **fmt: Any,
    ) -> Finding:
        return Finding(
            rule=self.id,
            condition=self.condition,
            severity=severity or self.severity,
            message=message if message is not None else self.message.format(**fmt),
            file=file,
            line=line,
            function=function,
            evidence=evidence,
        )


@dataclass
class Registry:
    rules: dict[str, type[Rule]] = field(default_factory=dict)

    def register(self, cls: type[Rule]) -> type[Rule]:
        for attr in ("id", "name", "condition"):
            if not getattr(cls, attr, None):
                raise TypeError(f"rule {cls.__name__} has no {attr}")
        if cls.condition not in CONDITIONS:
            raise TypeError(f"rule {cls.id}: unknown condition {cls.condition}")
        known = {old for r in self.rules.values() for old in r.old_ids} | set(self.rules)
        if cls.id in known:
            raise TypeError(f"rule id {cls.id} registered twice")
        self.rules[cls.id] = cls
        return cls

    def __iter__(self) -> Iterator[type[Rule]]:
        return iter(sorted(self.rules.values(), key=lambda r: r.id))

    def get(self, rule_id: str) -> type[Rule] | None:
        rule_id = rule_id.upper()
        if rule_id in self.rules:
            return self.rules[rule_id]
        for cls in self.rules.values():
            if rule_id in cls.old_ids:
                return cls
        return None


REGISTRY = Registry()
register = REGISTRY.register
