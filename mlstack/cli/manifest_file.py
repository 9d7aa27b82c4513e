"""``kubectl model … -f FILE``: read a manifest file strictly, and print it back whole.

A manifest file may hold many documents (the InferenceService beside its ServiceAccount, Secret,
…). ``read`` finds the one InferenceService the command works on and refuses what the API server
would refuse or what is ambiguous; ``render`` prints the whole file with only that document
replaced, so writing the output back over the file loses nothing: the other documents keep their
text and comments byte for byte (with ``-o json`` the objects come out as a ``v1`` ``List``, as
``kubectl get -o json`` prints several objects).

Duplicate keys: kubectl v1.34 converts YAML to JSON on the client with sigs.k8s.io/yaml's lenient
``Unmarshal`` (k8s.io/apimachinery@v0.34.0 pkg/util/yaml/decoder.go ``YAMLToJSONDecoder``), so a
key given twice silently keeps the last value; the API server refuses the same YAML under strict
field validation (kubectl's default ``--validate=strict``), because its serializer runs
``yaml.YAMLToJSONStrict`` (apimachinery pkg/runtime/serializer/json/json.go ``unmarshal``) —
seen against kube-apiserver v1.34.0: ``strict decoding error: yaml: unmarshal errors: line 8: key
"a" already set in map``. The check here is that strict rule, worded the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mlstack.core.errors import UsageError

MERGE_TAG = "tag:yaml.org,2002:merge"


class _DuplicateKey(yaml.YAMLError):
    pass


class StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader refusing a key given twice in one mapping (YAML 1.2 requires unique keys)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            if key_node.tag == MERGE_TAG:  # "<<: *base" may be overridden by design
                continue
            key = self.construct_object(key_node, deep=True)
            marker = json.dumps(key) if isinstance(key, str) else repr(key)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key; the base constructor reports it
                continue
            if duplicate:
                raise _DuplicateKey(f"line {key_node.start_mark.line + 1}: key {marker} already set in map")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


@dataclass
class Document:
    """One document of the file: its object and where its content sits in the text."""

    obj: Any
    start: int  # offsets of the root node's text; [start, end) is replaced by render
    end: int


def _content_end(node: yaml.Node) -> int:
    """Where a node's own text ends (block collections end where their last value ends, so the
    comments after them stay outside the span and survive)."""
    if isinstance(node, yaml.MappingNode | yaml.SequenceNode) and node.value and not node.flow_style:
        last = node.value[-1]
        return _content_end(last[1] if isinstance(node, yaml.MappingNode) else last)
    return node.end_mark.index


def _documents(text: str) -> list[Document]:
    loader = StrictLoader(text)
    documents = []
    try:
        while loader.check_node():
            node = loader.get_node()
            obj = loader.construct_document(node)
            documents.append(Document(obj, node.start_mark.index, _content_end(node)))
    finally:
        loader.dispose()
    return documents


def _describe(path: Path, exc: yaml.YAMLError) -> str:
    return f"{path}: not valid YAML: {' '.join(str(exc).split())}"


@dataclass
class ManifestFile:
    """A manifest file and the index of the InferenceService document the command works on."""

    path: Path
    text: str
    documents: list[Document]
    target: int

    @property
    def object(self) -> dict:
        return self.documents[self.target].obj

    @classmethod
    def read(cls, path: Path, name: str, namespace: str | None = None) -> ManifestFile:
        """The file's documents and its one InferenceService ``name`` (in ``namespace`` when given)."""
        if path.is_dir():
            raise UsageError(f"{path}: is a directory, expected a manifest file")
        if not path.is_file():
            raise UsageError(f"{path}: file not found")
        text = path.read_text()
        try:
            documents = _documents(text)
        except _DuplicateKey as exc:
            raise UsageError(
                f"{path}: {exc}: a key given twice in one object is refused by the API server's "
                "strict field validation (kubectl's default); keep one"
            ) from exc
        except yaml.YAMLError as exc:  # PyYAML's text spans lines: one line, the file named first
            raise UsageError(_describe(path, exc)) from exc
        found = [
            index
            for index, doc in enumerate(documents)
            if isinstance(doc.obj, dict)
            and doc.obj.get("kind") == "InferenceService"
            and (doc.obj.get("metadata") or {}).get("name") == name
            and (namespace is None or (doc.obj.get("metadata") or {}).get("namespace") in (None, namespace))
        ]
        if not found:
            where = f" in namespace {namespace!r}" if namespace else ""
            raise UsageError(f"{path} holds no InferenceService named {name!r}{where}")
        if len(found) > 1:
            numbers = ", ".join(str(index + 1) for index in found)
            hint = "" if namespace else " (or pick one with -n NAMESPACE)"
            raise UsageError(
                f"{path} holds {len(found)} InferenceServices named {name!r} (documents {numbers}): "
                f"the command would work on one and leave the other; keep one{hint}"
            )
        return cls(path, text, documents, found[0])

    def render(self, new: dict, output: str | None) -> str:
        """The whole file with the target document replaced by ``new`` (YAML), or a List (``json``)."""
        objects = [doc.obj for doc in self.documents if isinstance(doc.obj, dict)]
        if output == "json":
            if len(objects) == 1:
                return json.dumps(new, indent=2)
            items = [new if doc is self.documents[self.target] else doc.obj for doc in self.documents]
            listed = {
                "apiVersion": "v1",
                "kind": "List",
                "metadata": {"resourceVersion": ""},
                "items": [item for item in items if isinstance(item, dict)],
            }
            return json.dumps(listed, indent=2)
        target = self.documents[self.target]
        body = yaml.safe_dump(new, sort_keys=False).rstrip("\n")
        return (self.text[: target.start] + body + self.text[target.end :]).rstrip("\n")
