"""Which catalog entry prices a model name: the exact id, or an explicit alias. Never a guess.

`genai_prices` finds a model by its entries' `match` rules, which are loose by design
(`contains`, `starts_with`, regexes, first match wins): `gemini-2.5-pro:x#gemini-2.0-flash-lite`
"contains" `gemini-2.0-flash-lite`, and `gemini-2.5-pro-anything` "starts with" `gemini-2.5-pro`.
A gateway that bills by such a match bills a model it did not call. So a name is priced by a
catalog entry only when one of these holds, checked in this order:

1. the name is the entry's id (case-insensitively, as the catalog itself compares);
2. the name is listed by the entry as an `equals` alias (the catalog's own explicit table,
   e.g. `gpt-4o-2024-08-06` -> `gpt-4o`), and by no other entry of that provider;
3. the name is a dated snapshot of a name from 1 or 2, or of a whole-name `starts_with` rule of
   the entry: `<base>` followed by exactly one of `SNAPSHOT_SUFFIXES` (`-20250514`,
   `-2024-08-06`, `@20240620`, `-001`, `-0613`, `-latest`), e.g. `claude-sonnet-4-20250514`
   -> `claude-sonnet-4-0`, `gemini-2.0-flash-001` -> `gemini-2.0-flash`;
4. `EXPLICIT_ALIASES` below says so.

For 2 and 3 the catalog's own matcher must pick the same entry too, so the rules can only
narrow what the catalog accepts, never widen it. Anything else is unpriced: the gateway refuses
it unless the workspace priced that exact name with an override.

Django-free; imports `genai_prices` (data only) and nothing first-party.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

# A dated or versioned snapshot suffix; digits only, so it cannot name a different model family.
SNAPSHOT_SUFFIXES = tuple(
    re.compile(pattern + r"\Z")
    for pattern in (r"-\d{8}", r"-\d{4}-\d{2}-\d{2}", r"@\d{8}", r"-\d{3,4}", r"-latest")
)

# (catalog provider id, name) -> catalog model id, for names rules 1-3 miss. Each line is a
# reviewed decision; add one when a provider publishes a snapshot name the catalog lacks.
EXPLICIT_ALIASES: dict[tuple[str, str], str] = {}

# Catalog providers whose `fallback_model_providers` really serve those models under the same
# name (an Azure deployment of `gpt-4o` is OpenAI's gpt-4o). Google's fallback to Anthropic is
# for Vertex, which the Gemini API adapter does not call, so it is not followed.
FOLLOW_FALLBACKS = frozenset({"azure"})


def _clauses(logic: Any, kind: str) -> Iterator[str]:
    """Values of every `kind` clause (`equals` / `starts_with`) reachable through `or`."""
    name = type(logic).__name__
    if name == "ClauseEquals" and kind == "equals":
        yield logic.equals
    elif name == "ClauseStartsWith" and kind == "starts_with":
        yield logic.starts_with
    for sub in getattr(logic, "or_", None) or ():
        yield from _clauses(sub, kind)


class ProviderIndex:
    """One catalog provider's exact ids, `equals` aliases and whole-name prefixes."""

    def __init__(self, provider: Any) -> None:
        self.provider = provider
        self.by_id: dict[str, Any] = {m.id.lower(): m for m in provider.models}
        aliases: dict[str, Any] = {}
        ambiguous: set[str] = set()
        bases: dict[str, Any] = {}
        for model in provider.models:
            for value in _clauses(model.match, "equals"):
                alias = value.lower()
                if alias in self.by_id:
                    continue
                if alias in aliases and aliases[alias] is not model:
                    ambiguous.add(alias)
                aliases[alias] = model
            for value in _clauses(model.match, "starts_with"):
                # Only prefixes that are a whole name (end in a letter or digit) can be a base.
                prefix = value.lower()
                if prefix[-1:].isalnum():
                    bases.setdefault(prefix, model)
        self.aliases = {k: v for k, v in aliases.items() if k not in ambiguous}
        self.bases = bases

    def _agrees(self, name: str, model: Any) -> bool:
        found = self.provider.find_model(name)
        return found is not None and found.id == model.id

    def exact(self, name: str) -> Any | None:
        """The entry for `name` (already lower-cased) by rules 1-3, or None."""
        model = self.by_id.get(name)
        if model is not None:
            return model
        model = self.aliases.get(name)
        if model is not None:
            return model if self._agrees(name, model) else None
        for suffix in SNAPSHOT_SUFFIXES:
            match = suffix.search(name)
            if match is None:
                continue
            base = name[: match.start()]
            model = self.by_id.get(base) or self.aliases.get(base) or self.bases.get(base)
            if model is not None and self._agrees(name, model):
                return model
        return None


_indexes: dict[tuple[int, str], ProviderIndex] = {}


def _index(snapshot: Any, catalog_id: str) -> ProviderIndex | None:
    key = (id(snapshot), catalog_id)
    index = _indexes.get(key)
    if index is None:
        provider = next((p for p in snapshot.providers if p.id == catalog_id), None)
        if provider is None:
            return None
        if len(_indexes) > 200:  # a replaced snapshot leaves its indexes behind
            _indexes.clear()
        index = _indexes[key] = ProviderIndex(provider)
    return index


def catalog_model(snapshot: Any, catalog_id: str, name: str) -> Any | None:
    """The catalog `ModelInfo` that prices exactly `name` on `catalog_id`, or None."""
    lowered = name.lower()
    explicit = EXPLICIT_ALIASES.get((catalog_id, lowered))
    index = _index(snapshot, catalog_id)
    if index is None:
        return None
    model = index.exact(lowered)
    if model is None and explicit is not None:
        model = index.by_id.get(explicit.lower())
    if model is None and catalog_id in FOLLOW_FALLBACKS:
        for fallback in index.provider.fallback_model_providers or ():
            fallback_index = _index(snapshot, fallback)
            model = fallback_index.exact(lowered) if fallback_index else None
            if model is not None:
                break
    return model
