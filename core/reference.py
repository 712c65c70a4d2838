"""Renders the reference of every registered component (from its Params model) as Markdown."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from .registry import Registry

KIND_TITLES = {
    "store": "Stores", "loader": "Loaders (sources)", "encoder": "Encoders", "index": "Indexes",
    "fusion": "Fusions", "reranker": "Rerankers",
}


def _type_name(annotation: Any) -> str:
    text = repr(annotation) if not isinstance(annotation, type) else annotation.__name__
    for junk in ("typing.", "prismrag.chunking.", "pathlib.", "<class '", "'>"):
        text = text.replace(junk, "")
    return text.replace("NoneType", "None")


def _default(info: Any) -> str:
    if info.default is PydanticUndefined and info.default_factory is None:
        return "required"
    value = info.default_factory() if info.default_factory is not None else info.default
    if isinstance(value, BaseModel):
        value = value.model_dump()
    return f"`{value!r}`" if value is not None else "`None`"


def _doc(model: type[BaseModel], name: str) -> str:
    info = model.model_fields[name]
    if info.description:
        return info.description
    return _attribute_docs(model).get(name, "")


def _attribute_docs(model: type[BaseModel]) -> dict[str, str]:
    """Docstrings written under fields (`x: int = 1` followed by a string literal)."""
    import ast
    import inspect
    import textwrap

    docs: dict[str, str] = {}
    for cls in reversed(model.__mro__):
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for a, b in zip(body, body[1:], strict=False):
            if (isinstance(a, ast.AnnAssign) and isinstance(a.target, ast.Name) and isinstance(b, ast.Expr)
                    and isinstance(b.value, ast.Constant) and isinstance(b.value.value, str)):
                docs[a.target.id] = " ".join(b.value.value.split())
    return docs


def render_reference(registry: Registry, only_builtin: bool = True) -> str:
    lines = [
        "# Component reference",
        "",
        "Generated from each component's `Params` model by `python -m prismrag.reference > docs/components.md`;",
        "a test fails when it is out of date. Each component is used in a recipe as `{use: NAME, ...params}`.",
        "",
    ]
    infos = [i for i in registry.all_components() if not only_builtin or i.distribution == "prismrag"]
    for kind, title in KIND_TITLES.items():
        members = sorted((i for i in infos if i.kind == kind), key=lambda i: i.name)
        if not members:
            continue
        lines += [f"## {title}", ""]
        for info in members:
            cls = info.cls
            lines += [f"### `{info.name}`", ""]
            if cls.description:
                lines += [cls.description, ""]
            facts = []
            if kind == "encoder":
                facts.append(f"output: {cls.output}")
                facts.append("documents: " + ", ".join(sorted(m.value for m in cls.document_modalities)))
                facts.append("queries: " + ", ".join(sorted(m.value for m in cls.query_modalities)))
                if cls.metric:
                    facts.append(f"metric: {cls.metric}")
            if cls.extra:
                facts.append(f'needs `pip install "prismrag[{cls.extra}]"`')
            if facts:
                lines += ["; ".join(facts) + ".", ""]
            fields = cls.Params.model_fields
            if fields:
                lines += ["| parameter | type | default | meaning |", "| --- | --- | --- | --- |"]
                for name, field in fields.items():
                    shown = field.alias or name
                    doc = _doc(cls.Params, name).replace("|", "\\|")
                    lines.append(f"| `{shown}` | `{_type_name(field.annotation)}` | {_default(field)} | {doc} |")
                lines.append("")
            else:
                lines += ["No parameters.", ""]
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    print(render_reference(Registry()), end="")
