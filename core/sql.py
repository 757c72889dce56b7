"""A queryset's SQL built once, for the lookups every request repeats.

Building a queryset and compiling its SQL costs far more than running it: on the bench machine a
`filter(key=…)[:1]` took 180 µs, of which the database's part was about 20. `CompiledLookup`
asks Django once per database for the SQL, parameters and result converters of a queryset built
around placeholder values, then runs that SQL with each call's values and makes model instances
with Django's own converters and `Model.from_db`. A queryset whose parameters are not exactly the
placeholders, in order (a lookup that transforms its value), is refused when first compiled.
"""

import threading
from collections.abc import Callable

from django.db import DEFAULT_DB_ALIAS, connections


class _Placeholder(str):
    """A text value no caller sends, that text fields pass through unchanged (so only lookups on
    text columns compile: a number field would convert it, and is refused)."""

    def __new__(cls, index: int):
        return super().__new__(cls, f"\x00compiled-lookup-placeholder-{index}\x00")


class CompiledLookup:
    """`CompiledLookup(lambda key: Render.objects.filter(key=key)[:1]).get(key)` → the first
    instance or None, as `next(iter(queryset), None)` would give, without building the queryset."""

    def __init__(self, queryset_for: Callable):
        self._queryset_for = queryset_for
        self._compiled: dict[str, tuple] = {}
        self._lock = threading.Lock()

    def _compile(self, using: str, arity: int) -> tuple:
        placeholders = [_Placeholder(i) for i in range(arity)]
        queryset = self._queryset_for(*placeholders)
        compiler = queryset.query.get_compiler(using)
        sql, params = compiler.as_sql()
        if len(params) != arity or any(p is not q for p, q in zip(params, placeholders)):
            raise ValueError(f"{queryset.model.__name__}: the query's parameters are not its arguments: {params!r}")
        columns = [column for column, _, _ in compiler.select]
        names = [column.target.attname for column in columns]
        if names != [field.attname for field in queryset.model._meta.concrete_fields]:
            raise ValueError("CompiledLookup takes querysets of whole instances (no only/defer/values).")
        return sql, compiler, compiler.get_converters(columns), names, queryset.model

    def get(self, *values, using: str = DEFAULT_DB_ALIAS):
        compiled = self._compiled.get(using)
        if compiled is None:
            with self._lock:
                compiled = self._compiled.get(using) or self._compile(using, len(values))
                self._compiled[using] = compiled
        sql, compiler, converters, names, model = compiled
        with connections[using].cursor() as cursor:
            cursor.execute(sql, values)
            row = cursor.fetchone()
        if row is None:
            return None
        if converters:
            row = next(iter(compiler.apply_converters([row], converters)))
        return model.from_db(using, names, row)
