"""Reading a chain of view operations typed as text, such as "[:, 1:].t()". Used in 01_tensors.

The stride explorer of `ch01` (`show_view`, `stride_explorer`) lets a learner type the ops to apply;
this module parses that text and evaluates it only when it is indexing and shape methods on `t`.
It draws nothing.
"""

from __future__ import annotations

import ast

import torch

__all__ = ["apply_ops"]

_ALLOWED_METHODS = {
    "t", "transpose", "permute", "expand", "expand_as", "contiguous", "view", "reshape", "unsqueeze",
    "squeeze", "flatten", "clone", "narrow", "select", "flip", "T", "mT",
}


def _check_chain(node: ast.AST) -> None:
    """Refuse anything in an op chain but indexing and the methods in _ALLOWED_METHODS."""
    if isinstance(node, ast.Name):
        if node.id != "t":
            raise ValueError(f"only `t` may be named, not {node.id!r}")
        return
    if isinstance(node, ast.Attribute):
        if node.attr not in _ALLOWED_METHODS:
            raise ValueError(f"`.{node.attr}` is not one of: {', '.join(sorted(_ALLOWED_METHODS))}")
        return _check_chain(node.value)
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Attribute) or node.keywords:
            raise ValueError("write calls as t.method(numbers), without keywords")
        for arg in node.args:
            _check_literal(arg)
        return _check_chain(node.func)
    if isinstance(node, ast.Subscript):
        _check_literal(node.slice)
        return _check_chain(node.value)
    raise ValueError(f"{type(node).__name__} is not allowed in an op chain")


def _check_literal(node: ast.AST) -> None:
    if isinstance(node, ast.Constant) and (node.value is None or node.value is Ellipsis or isinstance(node.value, int)):
        return
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return _check_literal(node.operand)
    if isinstance(node, ast.Slice):
        for part in (node.lower, node.upper, node.step):
            if part is not None:
                _check_literal(part)
        return
    if isinstance(node, ast.Tuple):
        for elt in node.elts:
            _check_literal(elt)
        return
    raise ValueError("indices and arguments must be integers, slices, None or ...")


def apply_ops(t: torch.Tensor, chain: str) -> torch.Tensor:
    """Apply a chain of view operations written as text, e.g. "[:, 1:].t()". Used in 01_tensors.

    The chain may index (integers, slices, None, ...) and call shape methods such as transpose,
    permute, expand, contiguous, view, reshape and unsqueeze; nothing else is evaluated.
    An empty chain returns `t` itself. It is the parser behind `show_view` and `stride_explorer`.
    """
    chain = (chain or "").strip()
    if not chain:
        return t
    try:
        tree = ast.parse("t" + chain, mode="eval")
    except SyntaxError as err:
        raise ValueError(f"cannot read the op chain {chain!r}: {err.msg}") from None
    _check_chain(tree.body)
    return eval(compile(tree, "<op chain>", "eval"), {"__builtins__": {}}, {"t": t})  # noqa: S307
