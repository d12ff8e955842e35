"""A YAML reader for experiment files and ``--set`` values that a hostile or
careless file cannot turn into a hang, an out-of-memory kill or a silent change.

PyYAML's ``safe_load`` already refuses to build arbitrary objects, but it expands
aliases without bound (a 900-byte "billion laughs" file holds 10^9 scalars once
expanded), recurses once per nesting level (``[[[[...]]]]`` 800 deep is a
``RecursionError``) and keeps the last of two equal keys (``methods:`` written twice
silently drops the first block). :func:`load_yaml` uses :class:`BoundedLoader`,
which

* counts the nodes each alias re-uses and refuses more than :data:`MAX_ALIAS_NODES`
  in a document (and an alias that refers to itself),
* refuses nesting deeper than :data:`MAX_DEPTH` while it parses, before any
  recursion,
* refuses a mapping that repeats a key,
* reads ``1e-3`` and ``1e30`` as numbers (YAML 1.2; PyYAML's YAML 1.1 reads them
  as text, which a strict schema would then refuse),

each as one :class:`~clipasync.errors.ConfigError` line naming the line number.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from clipasync.errors import ConfigError

#: Nodes all aliases of one document may re-use together (an experiment file uses
#: a handful); well above any real file, far below a memory problem.
MAX_ALIAS_NODES = 10_000
#: Deepest nesting of lists and mappings (experiment files nest about 5 deep).
MAX_DEPTH = 50
#: Largest text accepted (an experiment file is a few kB).
MAX_TEXT = 1 << 20


def _size(node: Node, seen: dict[int, int]) -> int:
    """Number of nodes under ``node`` (shared subtrees counted each time), capped
    just above :data:`MAX_ALIAS_NODES` (the tree is finite: an alias of an open
    collection is refused before it is composed)."""
    key = id(node)
    if key in seen:
        return seen[key]
    total = 1
    if isinstance(node, SequenceNode | MappingNode):
        for child in node.value:
            parts = child if isinstance(child, tuple) else (child,)
            total += sum(_size(part, seen) for part in parts)
            if total > MAX_ALIAS_NODES:
                break
    seen[key] = total
    return total


class BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with an alias budget, a depth limit and unique keys."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._alias_nodes = 0
        self._depth = 0
        self._sizes: dict[int, int] = {}
        self._open: list[Any] = []  # anchors of the collections being composed

    # -- depth: counted on the event stream, before the recursive composer
    def compose_sequence_node(self, anchor: Any) -> Any:
        return self._nested(super().compose_sequence_node, anchor)

    def compose_mapping_node(self, anchor: Any) -> Any:
        return self._nested(super().compose_mapping_node, anchor)

    def _nested(self, compose: Any, anchor: Any) -> Any:
        self._depth += 1
        if self._depth > MAX_DEPTH:
            event = self.peek_event()  # type: ignore[no-untyped-call]
            mark = event.start_mark
            raise ConfigError(
                f"line {mark.line + 1}: nested deeper than {MAX_DEPTH} levels"
            )
        self._open.append(anchor)
        try:
            return compose(anchor)
        finally:
            self._depth -= 1
            self._open.pop()

    # -- aliases: each use re-counts the nodes it stands for
    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            anchor = event.anchor
            if anchor not in self.anchors:
                raise ConfigError(
                    f"line {event.start_mark.line + 1}: unknown alias *{anchor}"
                )
            if anchor in self._open:
                raise ConfigError(
                    f"line {event.start_mark.line + 1}: alias *{anchor} refers to "
                    "itself (a recursive structure)"
                )
            node = self.anchors[anchor]
            self._alias_nodes += _size(node, self._sizes)
            if self._alias_nodes > MAX_ALIAS_NODES:
                raise ConfigError(
                    f"line {event.start_mark.line + 1}: aliases expand to more than "
                    f"{MAX_ALIAS_NODES} nodes (an alias bomb?); write the values out"
                )
        return super().compose_node(parent, index)

    # -- duplicate keys
    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, MappingNode):
            keys: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # ``<<: *base``: explicit keys may override merged ones
                if not isinstance(key_node, ScalarNode):
                    raise ConfigError(
                        f"line {key_node.start_mark.line + 1}: a key must be a "
                        "plain value, not a list or mapping"
                    )
                key = self.construct_object(key_node, deep=deep)
                if key in keys:
                    raise ConfigError(
                        f"line {key_node.start_mark.line + 1}: duplicate key {key!r}"
                    )
                keys.add(key)
        return super().construct_mapping(node, deep=deep)


#: YAML 1.2 floats without a dot (``1e-3``), which YAML 1.1 leaves as strings.
_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")
BoundedLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", _EXPONENT_FLOAT, list("-+0123456789")
)


def load_yaml(text: str, where: str) -> Any:
    """Parse one YAML document with :class:`BoundedLoader`.

    Args:
        text: The document.
        where: What it is, for messages (a file name or ``override 'a=b'``).

    Raises:
        ConfigError: ``config error: <where> line N: <problem>`` on bad YAML,
            an alias bomb, a self-referencing alias, deep nesting or a repeated key.
    """
    if len(text) > MAX_TEXT:
        raise ConfigError(f"config error: {where}: larger than {MAX_TEXT >> 10} kB")
    loader: BoundedLoader | None = None
    try:
        loader = BoundedLoader(text)  # checks the characters: may raise already
        return loader.get_single_data()
    except ConfigError as exc:
        raise ConfigError(f"config error: {where} {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"config error: {where}{line}: {problem}") from None
    except RecursionError:
        raise ConfigError(f"config error: {where}: nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()
