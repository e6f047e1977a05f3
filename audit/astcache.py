"""Memoised AST traversal shared by the context, the phase model and every rule.

An audit walks the same parsed modules dozens of times (the program index, the config
evaluator, the tracer, the taints, each rule). `walk(node)` yields the same nodes in the same
order as `ast.walk`, but lists each node's children and each walked subtree only once. The
lists are kept on the nodes themselves (attributes outside `_fields`, ignored by `ast.dump`,
`ast.unparse` and `ast.iter_fields`), so they live exactly as long as their tree and can never
be confused with another tree's nodes. Trees must not be mutated after they were walked.
"""

from __future__ import annotations

import ast

_CHILDREN = "_pgolf_children"
CHILDREN = _CHILDREN  # the attribute holding a node's listed children
_WALK = "_pgolf_walk"
_IDS = "_pgolf_ids"
_TEXT = "_pgolf_text"


def children(node: ast.AST) -> tuple[ast.AST, ...]:
    """`tuple(ast.iter_child_nodes(node))`, computed once per node.

    Hot loops may read `node.__dict__.get(CHILDREN)` first and call this only on None (a
    call costs more than the lookup)."""
    hit = node.__dict__.get(_CHILDREN)
    if hit is not None:
        return hit
    # ast.iter_child_nodes, inlined (two nested generators per node cost more than the walk)
    found: list[ast.AST] = []
    for name in node._fields:
        value = getattr(node, name, None)
        if isinstance(value, ast.AST):
            found.append(value)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, ast.AST):
                    found.append(item)
    out = tuple(found)
    setattr(node, _CHILDREN, out)
    return out


def walk(node: ast.AST) -> tuple[ast.AST, ...]:
    """Every node of the subtree in `ast.walk` order (breadth first), computed once per node."""
    # Only the descendants are kept on the node: a tuple holding the node itself would make
    # every walked node a reference cycle, leaving whole trees to the cyclic garbage collector
    # (slow, and each pass of it traverses them all) instead of freeing them with the audit.
    below = node.__dict__.get(_WALK)
    if below is None:
        out: list[ast.AST] = list(children(node))
        for n in out:  # the list grows while it is read: breadth first
            kids = n.__dict__.get(_CHILDREN)  # children(n), without a call when listed
            if kids is None:
                kids = children(n)
            if kids:
                out.extend(kids)
        below = tuple(out)
        setattr(node, _WALK, below)
    return (node,) + below  # noqa: RUF005 (one copy; unpacking builds a list first, 2x slower)


def contains(outer: ast.AST, node: ast.AST) -> bool:
    """`any(sub is node for sub in walk(outer))`, with the subtree's ids listed once per node
    (ids of live nodes: the tree holds every node of the set)."""
    ids = outer.__dict__.get(_IDS)
    if ids is None:
        ids = frozenset(map(id, walk(outer)))
        setattr(outer, _IDS, ids)
    return id(node) in ids


def unparse(node: ast.AST) -> str:
    """`ast.unparse(node)`, computed once per node (a name or a dotted attribute chain is
    its text directly: the stdlib builds an unparser object per call)."""
    hit = node.__dict__.get(_TEXT)
    if hit is None:
        parts: list[str] = []
        cur = node
        while type(cur) is ast.Attribute:
            parts.append(cur.attr)  # type: ignore[attr-defined]
            cur = cur.value  # type: ignore[attr-defined]
        if type(cur) is ast.Name:
            parts.append(cur.id)  # type: ignore[attr-defined]
            hit = ".".join(reversed(parts))
        else:
            hit = ast.unparse(node)
        setattr(node, _TEXT, hit)
    return hit
