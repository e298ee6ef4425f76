"""The package's structure: notebooks import only from lower-numbered notebooks (lazy imports included), and
every DVC stage's code deps are exactly the import closure of its command."""
import ast, json, re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "ditgaze"


def module_files() -> dict[str, Path]:
    "ditgaze module name -> file, for every exported module (no __init__, no _modidx)."
    out = {}
    for f in sorted(PKG.rglob("*.py")):
        if f.name in ("__init__.py", "_modidx.py"): continue
        out[".".join(f.relative_to(ROOT).with_suffix("").parts)] = f
    return out


def notebook_number(f: Path) -> int:
    "The number of the notebook that exports `f` (from nbdev's header line)."
    m = re.search(r"File to edit: \.\./(?:\.\./)*nbs/(\d+)_", f.read_text())
    assert m, f"{f}: no nbdev 'File to edit' header"
    return int(m.group(1))


def imports_in(node: ast.AST, mods: dict, package: str = "ditgaze") -> set[str]:
    "ditgaze modules imported anywhere inside `node` (top level and inside functions); relative imports resolve against `package`."
    out = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Import): names = [a.name for a in n.names]
        elif isinstance(n, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - (n.level - 1)] if n.level else []
            names = [".".join(base + ([n.module] if n.module else []))]
        else: names = []
        for name in names:
            if isinstance(n, ast.ImportFrom):
                for a in n.names:                                    # `from ditgaze.renderers import unet` imports a module too
                    if f"{name}.{a.name}" in mods: out.add(f"{name}.{a.name}")
            if name in mods: out.add(name)
    return out


def closure(start: set[str], mods: dict) -> set[str]:
    "Modules reachable from `start` through imports (any import in a module's file counts)."
    seen, todo = set(), list(start)
    while todo:
        m = todo.pop()
        if m in seen: continue
        seen.add(m)
        todo += imports_in(ast.parse(mods[m].read_text()), mods, m.rsplit(".", 1)[0])
    return seen


def stage_closure(stage: str, mods: dict) -> set[str]:
    "Modules a `ditgaze <stage>` command can run: cli, then the imports of its stage function and of the cli helpers it calls."
    tree = ast.parse(mods["ditgaze.cli"].read_text())
    funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    top = set()
    for n in tree.body:
        if isinstance(n, (ast.Import, ast.ImportFrom)): top |= imports_in(n, mods)
    done, todo, found = set(), [f"stage_{stage}"], set(top)
    while todo:
        f = todo.pop()
        if f in done: continue
        done.add(f)
        found |= imports_in(funcs[f], mods)
        todo += [n.id for n in ast.walk(funcs[f]) if isinstance(n, ast.Name) and n.id in funcs]
    return {"ditgaze.cli"} | closure(found, mods)


def as_files(mods_: set[str], mods: dict) -> set[str]:
    return {mods[m].relative_to(ROOT).as_posix() for m in mods_}


def dvc_stages() -> dict[str, dict]:
    "dvc.yaml's stages, `foreach` expanded over params.yaml's keys."
    d = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    out = {}
    for name, st in d.items():
        if "foreach" in st:
            m = re.fullmatch(r"\$\{(\w+)\}", st["foreach"])
            for key in params[m.group(1)]:
                out[f"{name}@{key}"] = json.loads(json.dumps(st["do"]).replace("${key}", key))
        else: out[name] = st
    return out


def test_notebooks_import_only_lower_numbered_ones():
    mods = module_files()
    for name, f in mods.items():
        n = notebook_number(f)
        for dep in imports_in(ast.parse(f.read_text()), mods, name.rsplit(".", 1)[0]):
            if dep == name: continue
            assert notebook_number(mods[dep]) < n, f"{f.relative_to(ROOT)} (notebook {n:02d}) imports {dep} (notebook {notebook_number(mods[dep]):02d})"


def expected_code_deps() -> dict[str, list[str]]:
    "For every DVC stage run by the `ditgaze` command: the code files it depends on."
    mods, out = module_files(), {}
    for name, st in dvc_stages().items():
        m = re.match(r"ditgaze (\w+)", st["cmd"])
        if m: out[name] = sorted(as_files(stage_closure(m.group(1), mods), mods))
    return out


def test_stage_code_deps_are_the_import_closure():
    want = expected_code_deps()
    assert want, "no `ditgaze` stage in dvc.yaml"
    for name, files in want.items():
        st = dvc_stages()[name]
        deps = sorted(d for d in st.get("deps", []) if isinstance(d, str) and d.startswith("ditgaze/"))
        assert deps == files, f"stage {name}: code deps differ from the import closure of `{st['cmd']}`:\n missing {sorted(set(files) - set(deps))}\n extra {sorted(set(deps) - set(files))}"


def test_analysis_notebook_deps_are_its_import_closure():
    mods = module_files()
    for name, st in dvc_stages().items():
        nbs = [d for d in st.get("deps", []) if isinstance(d, str) and d.startswith("analysis/") and d.endswith(".ipynb")]
        for nb in nbs:
            src = "\n".join("".join(c["source"]) for c in json.loads((ROOT / nb).read_text())["cells"] if c["cell_type"] == "code")
            src = "\n".join(l for l in src.splitlines() if not l.lstrip().startswith(("%", "!")))
            files = as_files(closure(imports_in(ast.parse(src), mods), mods), mods)
            deps = {d for d in st["deps"] if isinstance(d, str) and d.startswith("ditgaze/")}
            assert deps == files, f"stage {name}: code deps differ from {nb}'s import closure: missing {sorted(files - deps)}, extra {sorted(deps - files)}"


def test_every_stage_runs_after_validation():
    for name, st in dvc_stages().items():
        if name == "config": continue
        assert "reports/run/valid.txt" in st.get("deps", []), f"stage {name} does not depend on reports/run/valid.txt (config must run first)"


if __name__ == "__main__":     # print the code deps dvc.yaml should list
    for k, v in expected_code_deps().items(): print(k, v)
