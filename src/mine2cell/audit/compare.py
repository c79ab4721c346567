"""A service's provenance report against the one recomputed from the chain, field by field.

Both are ``mine2cell.provenance/1`` documents. Lists are matched by what their items are about
(a country, a facility, a lot, an event), not by position, so a tampered quantity shows as the
fields it changed rather than as a reshuffled list; an exact value (``num``/``den`` with its
rounded form) is one field, shown rounded.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

# Fields that say when a report was made, not what the chain holds.
IGNORED = frozenset({"as_of"})


class Difference(NamedTuple):
    path: str
    service: Any  # None when the service's report lacks the field
    chain: Any  # None when the chain's lacks it

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "service": self.service, "chain": self.chain}

    def describe(self) -> str:
        if self.service is None:
            return f"{self.path}: missing from the service's report (chain: {_brief(self.chain)})"
        if self.chain is None:
            return f"{self.path}: not on the chain (service: {_brief(self.service)})"
        return f"{self.path}: service {_brief(self.service)}, chain {_brief(self.chain)}"


def _brief(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _exact(value: Any) -> str | None:
    """An exact value's rounded form ("12.5000 %", "1234.567 g"), or None if not one."""
    if isinstance(value, dict) and "num" in value and "den" in value:
        for key, unit in (("percent", "%"), ("kg", "kg"), ("grams", "g")):
            if key in value:
                return f"{value[key]} {unit}"
        return f"{value['num']}/{value['den']}"
    return None


def _key(item: Any) -> str | None:
    """What a list item is about, when it says (most specific first)."""
    if not isinstance(item, dict):
        return None
    if "code" in item and "message" in item:  # a flag
        return f"{item['code']}: {item['message']}"
    if isinstance(item.get("lot"), dict):
        lot = str(item["lot"].get("id"))
        return f"{lot}>{item['step']}" if "step" in item else lot
    if isinstance(item.get("event"), dict):
        return str(item["event"].get("event_id"))
    if "event_id" in item:
        return str(item["event_id"])
    if isinstance(item.get("facility"), dict):
        return str(item["facility"].get("id"))
    for field in ("country", "element", "stage"):
        if field in item and not isinstance(item[field], dict):
            return str(item[field])
    return None


def differences(service: Any, chain: Any, path: str = "") -> Iterator[Difference]:
    """Every field where ``service`` differs from ``chain``."""
    exact_service, exact_chain = _exact(service), _exact(chain)
    if exact_service is not None or exact_chain is not None:
        same = (
            isinstance(service, dict)
            and isinstance(chain, dict)
            and (service.get("num"), service.get("den")) == (chain.get("num"), chain.get("den"))
        )
        if not same:
            yield Difference(path, exact_service or service, exact_chain or chain)
        return
    if isinstance(service, dict) and isinstance(chain, dict):
        for key in list(dict.fromkeys([*chain, *service])):
            if key in IGNORED:
                continue
            where = f"{path}.{key}" if path else key
            if key not in service:
                yield Difference(where, None, _shown(chain[key]))
            elif key not in chain:
                yield Difference(where, _shown(service[key]), None)
            else:
                yield from differences(service[key], chain[key], where)
        return
    if isinstance(service, list) and isinstance(chain, list):
        keys_s = [_key(item) for item in service]
        keys_c = [_key(item) for item in chain]
        if None in keys_s or None in keys_c or len(set(keys_s)) < len(keys_s):
            for i in range(max(len(service), len(chain))):
                where = f"{path}[{i}]"
                if i >= len(service):
                    yield Difference(where, None, _shown(chain[i]))
                elif i >= len(chain):
                    yield Difference(where, _shown(service[i]), None)
                else:
                    yield from differences(service[i], chain[i], where)
            return
        by_key = dict(zip(keys_s, service, strict=True))
        on_chain = dict(zip(keys_c, chain, strict=True))
        for key in dict.fromkeys([*keys_c, *keys_s]):
            where = f"{path}[{key}]"
            if key not in by_key:
                yield Difference(where, None, _shown(on_chain[key]))
            elif key not in on_chain:
                yield Difference(where, _shown(by_key[key]), None)
            else:
                yield from differences(by_key[key], on_chain[key], where)
        if keys_s != keys_c and set(keys_s) == set(keys_c):
            yield Difference(f"{path} (order)", keys_s, keys_c)
        return
    if service != chain:
        yield Difference(path, _shown(service), _shown(chain))


def _shown(value: Any) -> Any:
    exact = _exact(value)
    return exact if exact is not None else value
