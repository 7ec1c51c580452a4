from __future__ import annotations

from typing import Any

from schemas import parse_schema
from transforms.core.formats.compatibility import check_compatibility


def _schema(*fields: dict[str, Any]) -> Any:
    return parse_schema({"type": "record", "name": "Out", "namespace": "t", "fields": list(fields)})


LABEL = {"type": "enum", "name": "Label", "symbols": ["positive", "negative"]}
V1 = _schema(
    {"name": "id", "type": "string"},
    {"name": "label", "type": LABEL},
    {"name": "rating", "type": "int"},
)


def test_added_field_with_default_is_fully_compatible() -> None:
    v2 = _schema(*V1.raw["fields"], {"name": "lang", "type": "string", "default": "en"})
    assert check_compatibility(v2, V1, "FULL") == []


def test_added_field_without_default_breaks_backward_naming_the_field() -> None:
    v2 = _schema(*V1.raw["fields"], {"name": "lang", "type": "string"})
    [problem] = check_compatibility(v2, V1, "BACKWARD")
    assert problem.direction == "BACKWARD" and problem.fields == ("lang",)
    assert check_compatibility(v2, V1, "FORWARD") == []


def test_removed_field_without_default_breaks_forward_naming_the_field() -> None:
    v2 = _schema(V1.raw["fields"][0], V1.raw["fields"][1])  # rating removed
    assert check_compatibility(v2, V1, "BACKWARD") == []
    [problem] = check_compatibility(v2, V1, "FORWARD")
    assert problem.fields == ("rating",)
    assert "rating" in str(problem)


def test_type_change_is_incompatible_naming_the_field() -> None:
    v2 = _schema(V1.raw["fields"][0], V1.raw["fields"][1], {"name": "rating", "type": "string"})
    [problem] = check_compatibility(v2, V1, "BACKWARD")
    assert problem.fields == ("rating",)
    assert any("string" in m and "int" in m for m in problem.messages)


def test_renamed_enum_symbol_is_incompatible_naming_the_field() -> None:
    renamed = {**LABEL, "symbols": ["positive", "bad"]}
    v2 = _schema(V1.raw["fields"][0], {"name": "label", "type": renamed}, V1.raw["fields"][2])
    problems = check_compatibility(v2, V1, "FULL")
    assert [p.direction for p in problems] == ["BACKWARD", "FORWARD"]
    assert all(p.fields == ("label",) for p in problems)
    assert any("negative" in m for m in problems[0].messages)


def test_none_checks_nothing() -> None:
    v2 = _schema({"name": "other", "type": "long"})
    assert check_compatibility(v2, V1, "NONE") == []


def _interop(name: str, fields: list[dict[str, Any]], **extra: Any) -> Any:
    return parse_schema(
        {"type": "record", "name": name, "namespace": "interop", "fields": fields, **extra}
    )


def test_record_renamed_with_an_unqualified_alias_in_its_namespace_is_compatible() -> None:
    """Java's SchemaCompatibility and Apache Avro's suite say compatible: the alias ``foo``
    means ``interop.foo`` inside namespace ``interop``."""
    writer = _interop("foo", [{"name": "f1", "type": "int"}, {"name": "f2", "type": "string"}])
    reader = _interop("other", [{"name": "f1", "type": "int"}], aliases=["foo"])
    assert check_compatibility(reader, writer, "BACKWARD") == []
    elsewhere = parse_schema({**writer.raw, "namespace": "elsewhere"})
    [problem] = check_compatibility(reader, elsewhere, "BACKWARD")
    assert "elsewhere.foo" in str(problem)


def test_nested_named_types_inherit_the_namespace_for_their_aliases() -> None:
    inner_writer = {"type": "enum", "name": "Mood", "symbols": ["up", "down"]}
    inner_reader = {
        "type": "enum",
        "name": "Feeling",
        "symbols": ["up", "down"],
        "aliases": ["Mood"],
    }
    writer = _interop("R", [{"name": "m", "type": inner_writer}])
    reader = _interop("R", [{"name": "m", "type": inner_reader}])
    assert check_compatibility(reader, writer, "BACKWARD") == []


def test_field_aliases_match_writer_field_names_as_written() -> None:
    writer = _interop("R", [{"name": "old_name", "type": "int"}])
    reader = _interop("R", [{"name": "new_name", "type": "int", "aliases": ["old_name"]}])
    assert check_compatibility(reader, writer, "BACKWARD") == []
    assert check_compatibility(writer, reader, "BACKWARD") != []  # no alias the other way
