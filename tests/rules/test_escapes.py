"""A corpus of known sandbox escapes and resource bombs (shared/reference/condition-sandbox.md): every
one is rejected by validation with a ConditionError, and the parseable ones also fail at the second
wall (the asteval interpreter the compiler uses) without touching a file, the host's values or stdout."""

from __future__ import annotations

import ast

import numpy as np
import pytest

from ubot.rules import ConditionError, analyze
from ubot.rules.compiler import interpret
from ubot.rules.kernel import Faults, make_operations

NUMBERS_LAMBDA = (
    "(lambda fc=(lambda n: [c for c in ().__class__.__bases__[0].__subclasses__() if c.__name__ == n][0]):"
    ' fc("function")(fc("Popen")("echo verybad",shell=True),{})())()'
)

ESCAPES = [
    # asteval CVE-2025-24359 / GHSA-3wwr-3g9f-9gc7: f-string format-spec injection, AttributeError.obj
    "f\"{price:{'}{__fstring__.__class__.__mro__[1]'}}\"",
    "f\"{[price]:{'}{__fstring__[0]'}}\"",
    "def pwn():\n try: f\"{dict.mro()[1]:'\\x7B__fstring__.__getattribute__.s\\x7D'}\"\n"
    " except Exception as ga: ga = ga.obj",
    'sub = ga(dict.mro()[1],"__subclasses__")()',
    # asteval GHSA-vp47-9734-prjw and issue #32: rewriting a procedure's AST
    "pwn.body[0].handlers[0].name = lender.body[0].value",
    "get_subclasses.body[0].value.attr = hack_string",
    # asteval CVE-2026-55244: BaseException subclasses out of eval()
    'raise SystemExit("terminated by sandbox user")',
    'raise KeyboardInterrupt("interrupt injected")',
    'raise GeneratorExit("gen escape")',
    'raise BaseException("base escape")',
    # asteval GHSA-9w56-46f6-3qhx: ndarray.ctypes, tofile, dump
    "zeros(1).ctypes.data > 0",
    "price.ctypes.data > 0",
    "price.tofile('/tmp/pwned')",
    "price.dump('/tmp/pwned')",
    # dunder writes (asteval 1.0.10 fix), Paper Viper, issue #86
    "rsi.__defaults__ = (0,)",
    "Procedure.__init__ = stealer",
    "print.__reduce__()",
    "red = print.__reduce__()",
    'genfromtxt(["1"], usemask=True).flat',
    "mf.dataiter = [genfromtxt]",
    "genfromtxt.view = id",
    # simpleeval CVE-2026-32640, issue #138, operator gadgets
    "np.ctypeslib.os.system('id')",
    "np.f2py.sys > 0",
    "foo.bar().gi_frame.f_globals['__builtins__'].exec('raise RuntimeError(\"u r hacked\")')",
    "attrgetter('__class__')(price)",
    # RestrictedPython CVE-2023-37271, CVE-2023-41039, CVE-2026-76825, CVE-2026-55830
    "q = (q.gi_frame.f_back.f_back.f_back for _ in (1,))",
    "[x for x in q][0].f_builtins['__import__']('os').listdir('/')",
    "'{0.__class__.__mro__}'.format(price)",
    "string.Formatter().get_field('0.__globals__', [f], {})[0]",
    "def f(_write_=lambda o: o, /): ...",
    # numexpr CVE-2023-39631
    NUMBERS_LAMBDA,
    # classic escapes
    "().__class__.__bases__[0].__subclasses__()",
    "[s for s in ().__class__.__base__.__subclasses__() if s.__name__ == 'Quitter'][0]('', 0)()",
    "price.__class__.__mro__[1].__subclasses__()",
    "rsi.__globals__",
    "rsi.__code__",
    "rsi.__builtins__",
    "price.__array_interface__",
    "(await _ for _ in ()).ag_frame",
    "__import__('os')",
    "__import__('os').system('id')",
    "__import__ > 0",
    "__builtins__",
    "globals()",
    "locals()",
    "vars()",
    "getattr(price, '__class__')",
    "eval('1')",
    "exec('1')",
    "compile('1', '', 'eval')",
    "type(price)",
    "breakpoint()",
    "help()",
    "input()",
    "print(1)",
    "exit()",
    "os.system('id')",
    "sys.exit()",
    # format strings and string tricks
    "'{0.__class__}'.format(price)",
    "format(1, '>999999999')",
    "f'{0:>999999999}'",
    "f\"{'x':*^{10**9}}\"",
    "'%999999999d' % 1",
    "'%*d' % (999999999, 1)",
    "'x' * 10**9",
    # files: open, numpy readers, wrappers, error-message exfiltration
    "open('/etc/passwd')",
    "open('/etc/passwd').read()",
    "open('/proc/self/environ').read()",
    "open > 0",
    "int(open('/etc/passwd').read())",
    "raise Exception(*open('/etc/passwd'))",
    "f'{open(\"/etc/passwd\").read()}'",
    "loadtxt('/etc/passwd')",
    "genfromtxt('/etc/shadow', dtype=str)",
    "fromfile('/etc/passwd').tobytes()",
    "fromregex('/etc/passwd', '.*', 'S8')",
    "list(map(open, ['/etc/passwd']))",
    "vectorize(open)('/etc/passwd')",
    "frompyfunc(open, 1, 1)('/etc/passwd')",
    "with open('/etc/passwd') as f: print(f.read())",
    "open('/dev/urandom', 'rb').read()",
    "np.load('/tmp/x.npy')",
    "numpy.loadtxt('/etc/passwd')",
    "rsi(14) < 30 or open('/etc/passwd') > 0",
    "price > 1 if price > 0 else open('/etc/passwd')",
    # state tampering: rebinding, mutation, process-wide numpy state, leaks
    "rsi = 1",
    "rsi = lambda n: 0",
    "sma = rsi",
    "def rsi(n): return 0",
    "del rsi",
    "price += 1",
    "price[:] = 0",
    "price.fill(0)",
    "(price := 0) > 1",
    "seterr(all='ignore')",
    "info(rsi)",
    "hex(id(price))",
    "id(price) > 0",
    "dir()",
    "price.view('S8')",
    "price.base",
    "price.T > 0",
    # CPU and memory
    "9**9**9",
    "9**9**9 > price",
    "price > 10**400",
    "((10**10000)**10000)**10000",
    "price ** 99 > 1",
    "factorial(10**8)",
    "[x for x in range(10**12)]",
    "{x: x for x in range(10**9)}",
    "for i in range(10**12): pass",
    "while True: pass",
    "max(range(10**12)) > 0",
    "[[0]*10**4 for _ in range(10**5)]",
    "set(range(10**9))",
    "['a']*10**10",
    "zeros(10**12)",
    "outer(arange(1e5), arange(1e5))",
    "(price[:, None] - price[None, :]).max()",
    "price > 1e308*10",
    "price > 0x" + "f" * 400,
    "price > 0x7fffffffffffffffffffffff",
    "price > 1" + "0" * 300,
    # parser bombs and deep nesting
    "(" * 200_000,
    "(" * 200_000 + "price > 1" + ")" * 200_000,
    "(" * 199 + "price > 1" + ")" * 199,
    "-" * 40_000 + "price > 1",
    "-" * 900 + "1 > price",
    "not " * 10_000 + "price > 1",
    "lambda: " * 5_000,
    "1+" * 24_000 + "1 > 0",
    "price" + ".T" * 20_000,
    # type confusion that would evaluate silently elsewhere
    "rsi('14') > 1",
    "rsi(-1) > 1",
    "rsi(10**18) > 1",
    "sma(True) > 1",
    "price > 1.02j",
    "price // 0 > 1",
    "price and sma(50)",
    "not price",
    "rsi(**{'n': 14}) > 1",
    "rsi(*[14]) > 1",
    "True",
    "None",
    "...",
    "price[...] > 0",
    "b'x' > price",
    # unicode look-alikes, invisible and control characters
    "ｅｖａｌ('1')",
    "𝐨𝐩𝐞𝐧('/etc/passwd').read()",
    "ℯ𝓍ℯ𝒸('1')",
    "__ｉｍｐｏｒｔ__('os')",
    "ｌａｍｂｄａ: 1",
    "\u0435val('1')",  # Cyrillic e
    "e\u0301val('1')",
    "price\u00a0> 1",
    "\ufeffprice > 1",
    "price\u200b > 1",
    "price > \uff11",
    "price > 1 # \u202e",
    "price\u202e > 1",
    "price\x00 > 1",
    "price > 1\x1b[2J",
    "price > 1\nimport os",
    "price > 1 \\\n or open(1)",
    "price > 1; import os",
]


@pytest.mark.parametrize("payload", ESCAPES, ids=[repr(p)[:60] for p in ESCAPES])
def test_escape_is_rejected(payload, audited, allowed_events):
    with audited() as events, pytest.raises(ConditionError) as caught:
        analyze(payload)
    assert set(events) <= allowed_events
    message = str(caught.value)
    assert len(message) < 1000
    for leak in ("root:", "Traceback", "Error", "<class", "object at 0x", "perhaps", "recursion"):
        assert leak not in message
    column = caught.value.column
    assert column is None or 1 <= column <= len(payload) + 1


def _parseable(payload: str) -> bool:
    try:
        ast.parse(payload)
    except Exception:
        return False
    return len(payload) <= 100_000


SECOND_WALL = [p for p in ESCAPES if _parseable(p)]


@pytest.mark.parametrize("payload", SECOND_WALL, ids=[repr(p)[:60] for p in SECOND_WALL])
def test_escape_fails_at_the_second_wall_too(payload, audited, allowed_events, capsys):
    """Fed straight to the interpreter the compiler uses (no validation at all), nothing gets out."""
    price = np.array([1.0, 2.0, 3.0])
    price.flags.writeable = False
    operations = make_operations(Faults())
    symbols = {**operations, "price": price, "rsi": price, "sma": price}
    with audited() as events:
        outcome, problem = interpret(payload, symbols)
    assert outcome is None and problem, payload
    assert set(events) <= allowed_events
    assert price.tolist() == [1.0, 2.0, 3.0]
    assert symbols["rsi"] is price and symbols["op_lt"] is operations["op_lt"]
    assert "print" not in symbols and "open" not in symbols
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_the_second_wall_runs_what_the_compiler_emits():
    price = np.array([1.0, 5.0])
    symbols = {**make_operations(Faults()), "price": price}
    outcome, problem = interpret("op_and(op_gt(price, 2.0), op_lt(price, op_neg(op_neg(6.0))))", symbols)
    assert outcome.tolist() == [0.0, 1.0] and problem is None
