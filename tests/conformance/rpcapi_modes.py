"""How zun 18.0.0 itself runs each compute RPC method, read from its installed source:

    python rpcapi_modes.py

Prints {"<method>": {"kind": "call"|"cast", "in_manager": bool, "locked": bool}} for every
method zun's `zun.compute.rpcapi.API` sends: `kind` from the `_call`/`_cast` it uses,
`in_manager` when zun's compute manager has the method, `locked` when that method runs its
work under `utils.synchronized(container.uuid)`.
"""
import ast
import inspect
import json

from zun.compute import manager as zun_manager
from zun.compute import rpcapi as zun_rpcapi


def sent_kinds():
    tree = ast.parse(inspect.getsource(zun_rpcapi))
    out = {}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr not in ("_call", "_cast") or len(node.args) < 2:
            continue
        name = node.args[1]
        if isinstance(name, ast.Constant) and isinstance(name.value, str):
            kind = node.func.attr.lstrip("_")
            assert out.get(name.value, kind) == kind, name.value
            out[name.value] = kind
    return out


def locked_methods():
    tree = ast.parse(inspect.getsource(zun_manager))
    manager = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Manager")
    out = {}
    for fn in manager.body:
        if not isinstance(fn, ast.FunctionDef):
            continue
        locked = False
        for inner in ast.walk(fn):
            if inner is fn or not isinstance(inner, ast.FunctionDef):
                continue
            for d in inner.decorator_list:
                if (isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute) and d.func.attr == "synchronized"
                        and "container.uuid" in ast.unparse(d.args[0])):
                    locked = True
        out[fn.name] = locked
    return out


def main():
    locked = locked_methods()
    print(json.dumps({m: {"kind": k, "in_manager": m in locked, "locked": locked.get(m, False)}
                      for m, k in sorted(sent_kinds().items())}))


if __name__ == "__main__":
    main()
