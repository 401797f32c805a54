"""Run fla's Triton kernels on the CPU through Triton's interpreter, for comparing them with our ops.

Import this module *instead of* importing triton or fla directly, in a fresh process: it sets
``TRITON_INTERPRET=1`` before triton is imported (``@triton.jit`` picks the interpreter at
decoration time) and works around four gaps of the interpreter in triton 3.9.0 (the version
pinned by the ``fla-interpret`` extra):

1. autotuning still benchmarks every config through a GPU driver: keep only the first config;
2. ``for i in range(n)`` yields Python ints where compiled Triton yields tensors, so a loop index
   used as ``i.to(...)`` fails: re-assign the loop variable at the top of every loop body, which
   the interpreter's assignment rewrite wraps into a tensor;
3. fla binds ``gather = tl.gather`` at import, which the interpreter only patches during a launch:
   rebind it to a function that looks ``tl.gather`` up at call time;
4. load/store masks built from Python ints are not boolean arrays: cast them.

Correctness only: every kernel runs its first config, slowly. Use float32 and tiny shapes.
"""

from __future__ import annotations

import ast
import os

os.environ["TRITON_INTERPRET"] = "1"

import numpy as np  # noqa: E402
import triton  # noqa: E402
import triton.language as tl  # noqa: E402
from triton.runtime import autotuner, interpreter  # noqa: E402

# 1. no benchmarking of autotune configs
autotuner.Autotuner.prune_configs = lambda self, kwargs: self.configs[:1]


# 2. loop indices become tensors
class _LoopIndexToTensor(interpreter.ASTTransformer):
    def visit_For(self, node):
        node = self.generic_visit(node)
        if isinstance(node.target, ast.Name):
            rebind = ast.Assign(targets=[ast.Name(id=node.target.id, ctx=ast.Store())],
                                value=ast.Name(id=node.target.id, ctx=ast.Load()))
            node.body.insert(0, self.visit_Assign(ast.fix_missing_locations(rebind)))
            ast.fix_missing_locations(node)
        return node


interpreter.FunctionRewriter.ast_transformer = _LoopIndexToTensor()

# 4. boolean masks for masked loads and stores
_load, _store = interpreter.InterpreterBuilder.create_masked_load, interpreter.InterpreterBuilder.create_masked_store


def _bool_mask(mask):
    return interpreter.TensorHandle(np.asarray(mask.data).astype(bool), tl.int1)


interpreter.InterpreterBuilder.create_masked_load = (
    lambda self, ptrs, mask, other, cache_policy, is_volatile:
    _load(self, ptrs, _bool_mask(mask), other, cache_policy, is_volatile))
interpreter.InterpreterBuilder.create_masked_store = (
    lambda self, ptrs, value, mask, cache_policy: _store(self, ptrs, value, _bool_mask(mask), cache_policy))

import importlib  # noqa: E402
import sys  # noqa: E402

importlib.import_module("fla.ops")  # imports every kernel module, now under the interpreter

# 3. late-bound gather in every fla module that imported it
for _name, _mod in list(sys.modules.items()):
    if _name.startswith("fla") and getattr(_mod, "gather", None) is tl.gather:
        _mod.gather = lambda src, index, axis: tl.gather(src, index, axis)

INTERPRETING = triton.runtime.interpreter is interpreter and os.environ["TRITON_INTERPRET"] == "1"
"""True once the set-up above has run."""
