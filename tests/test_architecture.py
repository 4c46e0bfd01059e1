"""The package's shape: import direction, module names, one class a file."""

import ast
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "gff_keras")
LINT_IMPORTS = os.path.join(os.path.dirname(sys.executable), "lint-imports")
# Subpackages whose modules each hold one public Keras class named after the
# module (keras-hub's rule); the other subpackages hold functions, configs
# and callbacks grouped by concept.
ONE_CLASS_PACKAGES = ("layers", "backbones", "heads", "models", "losses")


def lint_imports(root):
    return subprocess.run(
        [LINT_IMPORTS, "--config", os.path.join(root, "pyproject.toml")],
        cwd=root,
        env=dict(os.environ, PYTHONPATH=root),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_import_contract_holds():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_import_against_the_direction_breaks_the_contract(tmp_path):
    shutil.copytree(
        PACKAGE,
        tmp_path / "gff_keras",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copy(os.path.join(ROOT, "pyproject.toml"), tmp_path)
    module = tmp_path / "gff_keras" / "models" / "presets.py"
    module.write_text(module.read_text() + "\nimport gff_keras.training\n")
    result = lint_imports(str(tmp_path))
    assert result.returncode != 0
    assert "gff_keras.models is not allowed to import gff_keras.training" in (
        result.stdout
    )


def test_submodule_import_does_not_shadow_the_function():
    """Importing a module first must not turn a package's function into it."""
    code = (
        "from gff_keras.training.experiment_runner import run_experiment\n"
        "from gff_keras.training import run_experiment as exported\n"
        "import gff_keras.evaluation.inference\n"
        "from gff_keras.evaluation import predict_logits\n"
        "import types\n"
        "assert isinstance(exported, types.FunctionType), exported\n"
        "assert exported is run_experiment\n"
        "assert isinstance(predict_logits, types.FunctionType)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]


def modules():
    for directory, _, files in os.walk(PACKAGE):
        for name in sorted(files):
            if name.endswith(".py"):
                yield os.path.join(directory, name)


def package_exports(init_path):
    tree = ast.parse(open(init_path).read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            getattr(t, "id", None) == "__all__" for t in node.targets
        ):
            return {element.value for element in node.value.elts}
    return set()


def test_no_module_is_named_like_a_function_it_exports():
    clashes = []
    for path in modules():
        stem = os.path.splitext(os.path.basename(path))[0]
        tree = ast.parse(open(path).read())
        functions = {
            node.name for node in tree.body if isinstance(node, ast.FunctionDef)
        }
        init = os.path.join(os.path.dirname(path), "__init__.py")
        if stem in functions or (
            stem != "__init__" and stem in package_exports(init)
        ):
            clashes.append(os.path.relpath(path, ROOT))
    assert not clashes


@pytest.mark.parametrize("package", ONE_CLASS_PACKAGES)
def test_one_public_class_per_module_named_after_it(package):
    wrong = []
    for name in sorted(os.listdir(os.path.join(PACKAGE, package))):
        if not name.endswith(".py") or name == "__init__.py":
            continue
        path = os.path.join(PACKAGE, package, name)
        classes = [
            node.name
            for node in ast.parse(open(path).read()).body
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_")
        ]
        # GFFNet -> gffnet.py, ConvBNReLU -> conv_bn_relu.py
        if len(classes) > 1 or (
            classes and classes[0].lower() != name[:-3].replace("_", "")
        ):
            wrong.append((name, classes))
    assert not wrong
