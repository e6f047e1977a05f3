"""PG114 (info): settings of the effective configuration that no log records.

The rules judge the paths that ran from the effective configuration. When a switch is not in
the logs' hyperparameter dump but only listed as a README setting bullet or in the folder's
config.json, the report says so: the verdict then rests on the folder's own description.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from audit.model import Finding, Rule, Severity, register

if TYPE_CHECKING:
    from audit.context import AuditContext

_DESCRIBED = ("README settings", "config.json")


@register
class ConfigOutsideLogs(Rule):
    """Configuration taken from README setting bullets or config.json, not from the logs.

    ## What it does
    Lists the keys of the effective configuration whose value comes from a README bullet
    such as `` - `PPM_ENABLED=1` `` or from the folder's `config.json`, because no log's
    hyperparameter dump (and no README run command) sets them.

    ## Why is this bad?
    It is not a violation: code paths switched by those keys are judged as the folder
    describes them. The logs are the evidence of what ran (R8); a setting only described
    elsewhere is weaker evidence, and the report should say which values it relied on.

    ## Illegal example
    ```text
    README.md:   - `PPM_ENABLED=1`
    config.json: {"PPM_ENABLED": 1}
    train_seed42.log: no hyperparameter dump
    ```

    ## Legal example
    ```text
    train_seed42.log: ppm_enabled:1   (in the hyperparameter dump)
    ```

    ## References
    - RULES.md R8 (docs/rules.md); docs/auditor-heldout.md (M3)
    """

    id = "PG114"
    name = "config-outside-logs"
    condition = "R8"
    severity = Severity.INFO
    message = "effective configuration takes {items} from {origin} (no log records them)"

    def check(self, ctx: AuditContext) -> Iterator[Finding]:
        origin = getattr(ctx, "config_origin", {}) or {}
        for where in _DESCRIBED:
            keys = sorted(k for k, o in origin.items() if o == where)
            if not keys:
                continue
            items = ", ".join(f"{k}={ctx.config.get(k, '')}" for k in keys[:12])
            if len(keys) > 12:
                items += f" and {len(keys) - 12} more"
            file = "config.json" if where == "config.json" else _readme_name(ctx)
            yield self.finding(file=file, items=items, origin=where)


def _readme_name(ctx: AuditContext) -> str | None:
    for name in ("README.md", "readme.md", "README.MD", "README.txt", "README"):
        if name in ctx.files:
            return name
    return None
