"""Validation: untrusted condition text -> a checked syntax tree and its :class:`Analysis`, or a
:class:`ConditionError` that says what is wrong and where.

Three steps, each a wall of its own, and nothing of the text runs in any of them:

1. *Screen the characters* before Python sees them: cap the length, allow only the printable ASCII
   characters the language uses (letters, digits, ``_ . + - * / ( ) < > = ! ,`` and spaces; tabs and
   line breaks count as spaces). This rules out unicode look-alikes (Python folds ``ｅｖａｌ`` into
   ``eval``), bidi and control characters, strings, brackets, braces and ``:`` (slices, lambdas,
   walrus) before parsing. Also refused here: parentheses nested deeper than ``MAX_DEPTH``, and a
   number glued to a letter (``0x10``, ``1j``, ``1and``: the tokenizer would print a SyntaxWarning).
2. *Parse* with ``ast.parse(mode="eval")`` (one expression, no statements, no assignment), catching
   every exception: the parser raises MemoryError or RecursionError, not SyntaxError, on deeply
   nested input. Python's own messages are never shown; ours are built from the text.
3. *Walk* the tree against a whitelist: node types, names, functions, arities, argument ranges,
   literal numbers, node count and depth, and types (``and`` joins true/false values, arithmetic and
   comparisons take numbers, the whole condition is true/false). Anything not listed is an error.
"""

from __future__ import annotations

import ast
import difflib
import math
import re
from dataclasses import dataclass

from ubot.rules.language import (
    COIN_FIELDS,
    FIELDS,
    FUNCTION_NAMES,
    GLOBAL_FIELDS,
    INDICATORS,
    MATH_FUNCTIONS,
    MAX_DEPTH,
    MAX_INDICATORS,
    MAX_LENGTH,
    MAX_LITERAL,
    MAX_LITERAL_CHARS,
    MAX_NODES,
    MAX_POWER,
    Function,
    IndicatorCall,
    number_text,
)


class ConditionError(ValueError):
    """A condition that is not valid: ``message`` for a person, ``column`` (1-based) or None."""

    def __init__(self, message: str, column: int | None = None) -> None:
        super().__init__(message, column)
        self.message = message
        self.column = column

    def __str__(self) -> str:
        return self.message if self.column is None else f"column {self.column}: {self.message}"


@dataclass(frozen=True)
class Analysis:
    """What a valid condition uses: its fields, its indicators and the candles of history they need."""

    text: str
    fields: tuple[str, ...]
    indicators: tuple[IndicatorCall, ...]
    max_lookback: int


def analyze(text: str) -> Analysis:
    """Validate ``text``; raises :class:`ConditionError` (and nothing else) when it is not a condition."""
    return check(text)[0]


def check(text: str, *, number: bool = False) -> tuple[Analysis, ast.Expression]:
    """:func:`analyze`, plus the checked tree (for the compiler). With ``number`` the text must be a
    number instead of true/false (a chart's overlay, e.g. ``bb_upper(20, 2)``)."""
    source = _screen(text)
    indent = len(source) - len(source.lstrip(" "))  # Python rejects leading spaces ("indent")
    tree = _parse(source[indent:], indent)
    checker = _Checker(source[indent:], indent)
    checker.check(tree, NUMBER if number else BOOL)
    calls = tuple(checker.indicators)
    analysis = Analysis(
        text=text,
        fields=tuple(checker.fields),
        indicators=calls,
        max_lookback=max((call.lookback for call in calls), default=0),
    )
    return analysis, tree


# -- 1. characters ---------------------------------------------------------------------------------

_ALLOWED = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.+-*/()<>=!, ")
_WHITESPACE = {ord("\t"): " ", ord("\n"): " ", ord("\r"): " "}
_CHAR_HINTS = {
    "'": "the language has no text strings",
    '"': "the language has no text strings",
    "[": "there are no lists or subscripts",
    "]": "there are no lists or subscripts",
    "{": "there are no sets, dicts or format strings",
    "}": "there are no sets, dicts or format strings",
    ":": "there are no slices, lambdas or ':=' assignments",
    ";": "write a single expression",
    "#": "comments are not supported",
    "%": "'%' (modulo) is not supported",
    "&": "use 'and'",
    "|": "use 'or'",
    "~": "use 'not'",
    "^": "for powers use '**'",
    "\\": "write the condition without backslashes",
}


#: A number glued to a letter: hex/octal/binary, complex, ``1and``: Python's tokenizer would warn or fail.
_NUMBER_THEN_LETTER = re.compile(
    r"(?<![A-Za-z0-9_.])(?>(?:[0-9][0-9_]*\.?[0-9_]*|\.[0-9][0-9_]*)(?:[eE][+-]?[0-9][0-9_]*)?)(?=[A-Za-z_])"
)


def _screen(text: object) -> str:
    """The text ready for the parser (tabs and line breaks as spaces, same columns), or an error."""
    if not isinstance(text, str):
        raise ConditionError("the condition must be text")
    if len(text) > MAX_LENGTH:
        raise ConditionError(f"the condition is too long: {len(text)} characters, at most {MAX_LENGTH}")
    for index, char in enumerate(text):
        if char in _ALLOWED or ord(char) in _WHITESPACE:
            continue
        code = ord(char)
        if code > 127:
            message = f"character U+{code:04X} is not allowed: write conditions in plain ASCII"
        elif code < 32 or code == 127:
            message = f"control character U+{code:04X} is not allowed"
        else:
            message = f"{char!r} is not allowed: {_CHAR_HINTS.get(char, 'it is not part of the language')}"
        raise ConditionError(message, index + 1)
    source = text.translate(_WHITESPACE)
    if not source.strip():
        raise ConditionError("the condition is empty")
    glued = _NUMBER_THEN_LETTER.search(source)
    if glued:
        after = source[glued.end() :]
        if glued.group() == "0" and after[0] in "xXoObB":
            message = "numbers must be written in decimal, e.g. 42, 0.5 or 1e6"
        elif after[0] in "jJ" and not after[1:2].isalnum():
            message = "complex numbers are not allowed"
        else:
            message = "a number must not be followed directly by a letter: add a space or an operator"
        raise ConditionError(message, glued.start() + 1)
    depth = 0
    for index, char in enumerate(source):
        depth += (char == "(") - (char == ")")
        if depth > MAX_DEPTH:
            raise ConditionError(f"too many nested parentheses: at most {MAX_DEPTH}", index + 1)
    return source


# -- 2. parsing ------------------------------------------------------------------------------------

_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9.][A-Za-z0-9_.]*|==|!=|<=|>=|\*\*|\S")
_LONE_EQUALS = re.compile(r"(?<![=<>!])=(?![=])")


def _parse(source: str, indent: int) -> ast.Expression:
    """Parse ``source`` (the text after ``indent`` leading spaces)."""
    try:
        return ast.parse(source, mode="eval")
    except SyntaxError as exc:
        raise _syntax_error(source, exc.offset, indent) from None
    except Exception:  # MemoryError, RecursionError, ValueError...: never Python's text
        raise ConditionError("the condition could not be read: it is nested too deeply") from None


def _syntax_error(source: str, offset: int | None, indent: int) -> ConditionError:
    """Our own message for a syntax error: unbalanced parentheses, '=', or the token where it broke."""
    opened: list[int] = []
    for index, char in enumerate(source):
        if char == "(":
            opened.append(index)
        elif char == ")":
            if not opened:
                return ConditionError("')' has no matching '('", indent + index + 1)
            opened.pop()
    if opened:
        return ConditionError("'(' is never closed", indent + opened[-1] + 1)
    equals = _LONE_EQUALS.search(source)
    if equals:
        return ConditionError(
            "'=' is not allowed: to compare use '==', '<=' or '>='", indent + equals.start() + 1
        )
    end = len(source.rstrip())
    if not offset or offset > end:
        return ConditionError(
            "the condition ends too early: something is missing at the end", indent + end + 1
        )
    token = _TOKEN.match(source, offset - 1)
    near = token.group() if token else source[offset - 1]
    return ConditionError(f"invalid syntax at {_quoted(near)}", indent + offset)


def _quoted(text: str, limit: int = 40) -> str:
    """User text in a message, cut short (it is already known to be printable ASCII)."""
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


# -- 3. the whitelist ------------------------------------------------------------------------------

NUMBER, BOOL = "number", "true/false value"

_ARITHMETIC = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}
_UNSUPPORTED_OPERATORS = {
    ast.Mod: "%",
    ast.FloorDiv: "//",
    ast.MatMult: "@",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitOr: "|",
    ast.BitXor: "^",
    ast.BitAnd: "&",
}
_COMPARISONS = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!="}
_UNSUPPORTED_COMPARISONS = {ast.In: "in", ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not"}
_COMPREHENSION = "comprehensions ('for' inside an expression) are not allowed"
_CONTAINERS = "lists, tuples, sets and dicts are not allowed"
#: Node types the language does not have, with what to tell the user.
_FORBIDDEN: dict[type, str] = {
    ast.Attribute: "attributes ('.name') are not allowed",
    ast.Subscript: "subscripts ('[...]') are not allowed",
    ast.Slice: "slices are not allowed",
    ast.Starred: "'*' unpacking is not allowed",
    ast.JoinedStr: "f-strings are not allowed",
    ast.FormattedValue: "f-strings are not allowed",
    ast.Lambda: "lambda is not allowed",
    ast.ListComp: _COMPREHENSION,
    ast.SetComp: _COMPREHENSION,
    ast.DictComp: _COMPREHENSION,
    ast.GeneratorExp: _COMPREHENSION,
    ast.NamedExpr: "':=' (assignment) is not allowed",
    ast.IfExp: "'x if c else y' is not supported: combine conditions with and/or",
    ast.List: _CONTAINERS,
    ast.Tuple: _CONTAINERS,
    ast.Set: _CONTAINERS,
    ast.Dict: _CONTAINERS,
    ast.Await: "'await' is not allowed",
    ast.Yield: "'yield' is not allowed",
    ast.YieldFrom: "'yield' is not allowed",
}
_DECIMAL = re.compile(r"[0-9_.]+(?:[eE][+-]?[0-9_]+)?")


class _Checker:
    """One walk over a parsed condition; collects the fields and indicators it uses."""

    def __init__(self, source: str, indent: int = 0) -> None:
        self.source = source
        self.indent = indent  # leading spaces cut before parsing: add them back to columns
        self.fields: dict[str, None] = {}  # ordered sets: first use first
        self.indicators: dict[IndicatorCall, None] = {}
        self.handlers = {
            ast.BoolOp: self.bool_op,
            ast.UnaryOp: self.unary_op,
            ast.BinOp: self.bin_op,
            ast.Compare: self.compare,
            ast.Call: self.call,
            ast.Name: self.name,
            ast.Constant: self.constant,
        }

    def check(self, tree: ast.Expression, want: str = BOOL) -> None:
        if not isinstance(tree, ast.Expression):  # pragma: no cover - mode="eval" guarantees it
            raise ConditionError("the condition must be a single expression")
        count = sum(1 for node in ast.walk(tree) if isinstance(node, ast.expr))  # iterative
        if count > MAX_NODES:
            raise ConditionError(f"the condition has too many parts: {count}, at most {MAX_NODES}")
        kind = self.visit(tree.body, 1)
        if kind != want and want == NUMBER:
            raise ConditionError(
                "an overlay is a number, not true/false: leave out the comparison, e.g. 'sma(20)'",
                self.column(tree.body),
            )
        if kind != want:
            raise ConditionError(
                "the condition must be true or false: compare this number with something, e.g. 'price > 100'",
                self.column(tree.body),
            )

    def visit(self, node: ast.AST, depth: int) -> str:
        if depth > MAX_DEPTH:
            raise ConditionError(
                f"the condition is nested too deeply: more than {MAX_DEPTH} levels", self.column(node)
            )
        handler = self.handlers.get(type(node))
        if handler is None:
            if isinstance(node, ast.Tuple) and len(node.elts) > 1:  # "price > 1,5": a decimal comma?
                comma = self.source.find(",", node.elts[0].end_col_offset)
                raise ConditionError(
                    "',' only separates a function's arguments: write decimals with '.', e.g. 1.5",
                    self.indent + comma + 1,
                )
            message = _FORBIDDEN.get(type(node), "this is not part of the condition language")
            raise ConditionError(message, self.column(node) if hasattr(node, "col_offset") else None)
        return handler(node, depth)

    def column(self, node: ast.AST) -> int:
        """1-based column of ``node`` in the user's text."""
        return self.indent + node.col_offset + 1

    def expect(self, node: ast.AST, depth: int, kind: str, why: str) -> None:
        if self.visit(node, depth) != kind:
            raise ConditionError(why, self.column(node))

    def operator_column(self, before: ast.AST, after: ast.AST) -> int:
        """Column of the operator between two operands (skipping spaces and parentheses)."""
        for index in range(before.end_col_offset, after.col_offset):
            if self.source[index] not in " ()":
                return self.indent + index + 1
        return self.column(after)

    # -- node types ----------------------------------------------------------------------------

    def bool_op(self, node: ast.BoolOp, depth: int) -> str:
        word = "and" if isinstance(node.op, ast.And) else "or"
        why = f"'{word}' joins true/false values, but this is a number: compare it first, e.g. 'price > 100'"
        for value in node.values:
            self.expect(value, depth + 1, BOOL, why)
        return BOOL

    def unary_op(self, node: ast.UnaryOp, depth: int) -> str:
        if isinstance(node.op, ast.Not):
            why = "'not' needs a true/false value, but this is a number: compare it first, e.g. 'not price > 100'"
            self.expect(node.operand, depth + 1, BOOL, why)
            return BOOL
        if isinstance(node.op, ast.Invert):
            raise ConditionError("'~' is not supported: use 'not'", self.column(node))
        sign = "-" if isinstance(node.op, ast.USub) else "+"
        self.expect(node.operand, depth + 1, NUMBER, f"'{sign}' needs a number, not a true/false value")
        return NUMBER

    def bin_op(self, node: ast.BinOp, depth: int) -> str:
        symbol = _ARITHMETIC.get(type(node.op))
        if symbol is None:
            symbol = _UNSUPPORTED_OPERATORS.get(type(node.op), "?")
            raise ConditionError(
                f"operator '{symbol}' is not supported: use + - * / or ** with a small whole exponent",
                self.operator_column(node.left, node.right),
            )
        why = f"'{symbol}' needs numbers on both sides, not a true/false value"
        self.expect(node.left, depth + 1, NUMBER, why)
        if isinstance(node.op, ast.Pow):
            exponent = self.literal(node.right)
            if exponent is None or not exponent.is_integer() or not 0 <= exponent <= MAX_POWER:
                raise ConditionError(
                    f"the exponent of '**' must be a whole number from 0 to {MAX_POWER} written directly,"
                    " e.g. 'x ** 2'",
                    self.column(node.right),
                )
            return NUMBER
        self.expect(node.right, depth + 1, NUMBER, why)
        return NUMBER

    def compare(self, node: ast.Compare, depth: int) -> str:
        why = "only numbers can be compared, and this is a true/false value: join conditions with and/or"
        operands = [node.left, *node.comparators]
        for op, before, after in zip(node.ops, operands, operands[1:]):
            if type(op) not in _COMPARISONS:
                word = _UNSUPPORTED_COMPARISONS.get(type(op), "?")
                raise ConditionError(
                    f"'{word}' is not supported: compare numbers with < <= > >= == !=",
                    self.operator_column(before, after),
                )
        for operand in operands:
            self.expect(operand, depth + 1, NUMBER, why)
        return BOOL

    def call(self, node: ast.Call, depth: int) -> str:
        func = node.func
        if not isinstance(func, ast.Name):
            raise ConditionError(
                f"only the language's functions can be called; known: {', '.join(FUNCTION_NAMES)}",
                self.column(func),
            )
        name = func.id
        self.check_reserved(name, func)
        if name not in INDICATORS and name not in MATH_FUNCTIONS:
            if name in FIELDS:
                raise ConditionError(
                    f"'{name}' is a field, not a function: write it without '(...)'", self.column(func)
                )
            raise ConditionError(
                f"unknown function {_quoted(name)}{_suggest(name)}; known: {', '.join(FUNCTION_NAMES)}",
                self.column(func),
            )
        example = INDICATORS[name].example if name in INDICATORS else f"{name}(change(24), 0)"
        if node.keywords:
            raise ConditionError(
                f"keyword arguments are not supported: write e.g. '{example}'", self.column(node.keywords[0])
            )
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                raise ConditionError("'*' arguments are not allowed", self.column(arg))
        if name in INDICATORS:
            self.indicator(node, INDICATORS[name])
            return NUMBER
        low, high = MATH_FUNCTIONS[name]
        if not low <= len(node.args) <= high:
            wanted = "1 argument" if low == high == 1 else f"{low} to {high} arguments"
            raise ConditionError(f"{name}() takes {wanted}, got {len(node.args)}", self.column(node))
        for arg in node.args:
            self.expect(arg, depth + 1, NUMBER, f"{name}() takes numbers, not true/false values")
        return NUMBER

    def indicator(self, node: ast.Call, spec: Function) -> None:
        params = spec.params
        if len(node.args) != len(params):
            if not params:
                message = f"{spec.name}() takes no arguments: write '{spec.example}'"
            else:
                wanted = "1 argument" if len(params) == 1 else f"{len(params)} arguments"
                message = f"{spec.signature} takes {wanted}, got {len(node.args)}: e.g. '{spec.example}'"
            raise ConditionError(message, self.column(node))
        args: list[int | float] = []
        for param, arg in zip(params, node.args):
            value = self.literal(arg)
            if value is None:
                raise ConditionError(
                    f"{spec.signature}: {param.name} must be a number written directly, e.g. '{spec.example}'",
                    self.column(arg),
                )
            if (param.whole and not value.is_integer()) or not param.low <= value <= param.high:
                raise ConditionError(
                    f"{spec.signature}: {param.name} must be {param.describe()}, got {number_text(value)}",
                    self.column(arg),
                )
            args.append(int(value) if param.whole else value)
        self.indicators[IndicatorCall(spec.name, tuple(args))] = None
        if len(self.indicators) > MAX_INDICATORS:
            raise ConditionError(
                f"too many different indicators: at most {MAX_INDICATORS} per condition", self.column(node)
            )

    def literal(self, node: ast.AST) -> float | None:
        """The value of a number written directly (with an optional sign), else None."""
        sign = 1.0
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            sign = -1.0 if isinstance(node.op, ast.USub) else 1.0
            node = node.operand
        if isinstance(node, ast.Constant):
            return sign * self.number(node)
        return None

    def name(self, node: ast.Name, depth: int) -> str:
        name = node.id
        self.check_reserved(name, node)
        if name in FIELDS:
            self.fields[name] = None
            return NUMBER
        if name in INDICATORS:
            example = INDICATORS[name].example
            raise ConditionError(
                f"'{name}' is an indicator: call it with its arguments, e.g. '{example}'", self.column(node)
            )
        if name in MATH_FUNCTIONS:
            raise ConditionError(
                f"'{name}' is a function: call it, e.g. '{name}(change(24), 0)'", self.column(node)
            )
        known = ", ".join((*COIN_FIELDS, *GLOBAL_FIELDS))
        raise ConditionError(
            f"unknown name {_quoted(name)}{_suggest(name)}; known fields: {known}", self.column(node)
        )

    def check_reserved(self, name: str, node: ast.AST) -> None:
        if name.startswith("_") or "__" in name:
            raise ConditionError(
                f"{_quoted(name)} is not allowed: names that start with '_' or contain '__' are reserved",
                self.column(node),
            )

    def constant(self, node: ast.Constant, depth: int) -> str:
        self.number(node)
        return NUMBER

    def number(self, node: ast.Constant) -> float:
        """A literal number's value, after checking how it is written and how large it is."""
        value = node.value
        column = self.column(node)
        if isinstance(value, bool) or value is None:
            raise ConditionError(
                "True, False and None are not part of the language: write a comparison", column
            )
        if isinstance(value, str | bytes):
            raise ConditionError("text strings are not allowed", column)
        if isinstance(value, complex):
            raise ConditionError("complex numbers are not allowed", column)
        if not isinstance(value, int | float):
            raise ConditionError("this is not part of the condition language", column)
        text = self.source[node.col_offset : node.end_col_offset]
        if not _DECIMAL.fullmatch(text):
            raise ConditionError("numbers must be written in decimal, e.g. 42, 0.5 or 1e6", column)
        if len(text) > MAX_LITERAL_CHARS:
            raise ConditionError(f"this number is too long: at most {MAX_LITERAL_CHARS} characters", column)
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number) or abs(number) > MAX_LITERAL:
            raise ConditionError(
                f"this number is too large: at most {MAX_LITERAL:.0e}".replace("e+", "e"), column
            )
        return number


def _suggest(name: str) -> str:
    close = difflib.get_close_matches(name, [*FIELDS, *FUNCTION_NAMES], n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""
