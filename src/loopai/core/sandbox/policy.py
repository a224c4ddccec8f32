"""What a program may contain, decided from its syntax tree before it ever runs.

The rules are deliberately blunt: imports only from an allow-list; no name or attribute
that starts with an underscore (every `().__class__.__base__.__subclasses__()` style
escape goes through one); no frame and code attributes (`gi_frame.f_back.f_globals`
reaches the worker's real globals without a single underscore); none of the builtins
that reach outside (open, eval, exec, getattr…). The worker also runs programs with a
restricted builtins table and module proxies, and under OS limits: this check is the first
wall, not the only one.
"""

from __future__ import annotations

import ast

import msgspec

ALLOWED_MODULES = frozenset({
    "re", "json", "math", "statistics", "string", "collections", "itertools", "functools",
    "datetime", "unicodedata", "difflib",
})
ALLOWED_SUBMODULES = frozenset({"collections.abc"})

DENIED_NAMES = frozenset({
    "open", "eval", "exec", "compile", "breakpoint", "globals", "locals", "vars",
    "getattr", "setattr", "delattr", "help", "exit", "quit", "memoryview", "super",
    "classmethod", "staticmethod", "property",
})

# Attribute names without underscores that still lead to frames, code or globals.
DENIED_ATTRIBUTES = frozenset({
    "gi_frame", "gi_code", "gi_yieldfrom", "cr_frame", "cr_code", "cr_await", "ag_frame",
    "ag_code", "ag_await", "f_globals", "f_locals", "f_builtins", "f_back", "f_code",
    "tb_frame", "tb_next", "func_globals", "func_code", "co_code", "mro",
    # string.Formatter resolves "0.__globals__"-style field names to real objects: the
    # underscore never appears in the program's syntax, only in a string.
    "Formatter", "get_field", "get_value", "vformat", "format_field", "convert_field",
})

ENTRYPOINTS = ("run", "classify")

_BRANCHES = (ast.If, ast.For, ast.While, ast.IfExp, ast.ExceptHandler, ast.Assert,
             ast.comprehension, ast.match_case)
_DENIED_NODES: dict[type[ast.AST], str] = {
    ast.AsyncFunctionDef: "async functions",
    ast.Await: "await",
    ast.AsyncFor: "async for",
    ast.AsyncWith: "async with",
    ast.Global: "global statements",
    ast.Nonlocal: "nonlocal statements",
}


class ProgramRejected(Exception):
    """The program breaks the sandbox rules; `details` says where, one line each."""

    def __init__(self, message: str, details: list[str]) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class ProgramInfo(msgspec.Struct, frozen=True):
    entrypoint: str
    lines_of_code: int
    cyclomatic_complexity: int


def _module_allowed(name: str) -> bool:
    return name in ALLOWED_MODULES or name in ALLOWED_SUBMODULES


def _problems(tree: ast.Module) -> list[str]:
    out: list[str] = []

    def refuse(node: ast.AST, text: str) -> None:
        out.append(f"line {getattr(node, 'lineno', '?')}: {text}")

    for node in ast.walk(tree):
        kind = type(node)
        if kind in _DENIED_NODES:
            refuse(node, f"{_DENIED_NODES[kind]} are not allowed")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if not _module_allowed(alias.name):
                    refuse(node, f"import of {alias.name!r} is not allowed (allowed: "
                           f"{', '.join(sorted(ALLOWED_MODULES))})")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                refuse(node, "relative imports are not allowed")
            elif not node.module or not _module_allowed(node.module):
                refuse(node, f"import from {node.module!r} is not allowed")
            for alias in node.names:
                if alias.name == "*" or alias.name.startswith("_"):
                    refuse(node, f"importing {alias.name!r} is not allowed")
        elif isinstance(node, ast.Attribute):
            if node.attr.startswith("_") or node.attr in DENIED_ATTRIBUTES:
                refuse(node, f"access to attribute {node.attr!r} is not allowed")
        elif isinstance(node, ast.MatchClass):
            # `case C(__class__=x)` reads attributes without an ast.Attribute node.
            for attr in node.kwd_attrs:
                if attr.startswith("_") or attr in DENIED_ATTRIBUTES:
                    refuse(node, f"matching on attribute {attr!r} is not allowed")
        elif isinstance(node, ast.Name):
            if node.id.startswith("__") or node.id in DENIED_NAMES:
                refuse(node, f"use of {node.id!r} is not allowed")
        elif isinstance(node, ast.alias) and node.asname and node.asname.startswith("__"):
            refuse(node, f"alias {node.asname!r} is not allowed")
    return out


def cyclomatic_complexity(tree: ast.AST) -> int:
    """McCabe's number for the whole program: one plus each decision point."""
    count = 1
    for node in ast.walk(tree):
        if isinstance(node, _BRANCHES):
            count += 1
            if isinstance(node, ast.comprehension):
                count += len(node.ifs)
        elif isinstance(node, ast.BoolOp):
            count += len(node.values) - 1
    return count


def lines_of_code(code: str) -> int:
    return sum(1 for line in code.splitlines() if line.strip() and not
               line.strip().startswith("#"))


def entrypoint_of(tree: ast.Module) -> str | None:
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    return next((name for name in ENTRYPOINTS if name in defined), None)


def check_program(code: str) -> ProgramInfo:
    """Parses and checks `code`; raises ProgramRejected with every problem found."""
    try:
        tree = ast.parse(code, filename="<program>", mode="exec")
    except SyntaxError as exc:
        raise ProgramRejected("the program does not compile",
                              [f"line {exc.lineno}: {exc.msg}"]) from None
    except (ValueError, MemoryError, RecursionError) as exc:
        raise ProgramRejected("the program does not compile", [str(exc)]) from None
    problems = _problems(tree)
    if problems:
        raise ProgramRejected("the program breaks the sandbox rules", problems)
    entrypoint = entrypoint_of(tree)
    if entrypoint is None:
        raise ProgramRejected("the program has no entry point",
                              ["define a top-level run(input) or classify(text) function"])
    return ProgramInfo(entrypoint=entrypoint, lines_of_code=lines_of_code(code),
                       cyclomatic_complexity=cyclomatic_complexity(tree))
