"""``{% cached_fragment %}``: Django's ``{% cache %}`` with tags and stampede protection.

    {% load rediskit_cache %}
    {% cached_fragment "product-card" 300 product.pk tags=product_tags %}
        ... expensive markup ...
    {% endcached_fragment %}

Arguments: a fragment name, a timeout in seconds (``None``: no expiry; ``TAG_TTL`` if tagged), any
number of values the fragment varies on, then optional ``tags=`` (a tag or a list of tags) and
``using=`` (a cache alias). The fragment is rendered by one request per key at a time, with the
tag versions captured before rendering, so an invalidation during rendering is never lost.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.template.base import FilterExpression, Node, NodeList, Parser, Token
from django.template.context import Context
from django.utils.safestring import SafeString, mark_safe

from django_rediskit.cache.decorators import backend_for
from django_rediskit.cache.keys import KeyBuilder, digest

register = template.Library()

_KEYWORDS = ("tags", "using")


class CachedFragmentNode(Node):
    def __init__(
        self,
        nodelist: NodeList,
        name: FilterExpression,
        timeout: FilterExpression,
        vary_on: list[FilterExpression],
        options: dict[str, FilterExpression],
    ) -> None:
        self.nodelist = nodelist
        self.name = name
        self.timeout = timeout
        self.vary_on = vary_on
        self.options = options

    def render(self, context: Context) -> SafeString:
        name = self.name.resolve(context)
        timeout = self.timeout.resolve(context)
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int)):
            try:
                timeout = int(timeout)
            except (TypeError, ValueError):
                raise template.TemplateSyntaxError(
                    f"cached_fragment timeout must be a number, not {timeout!r}"
                ) from None
        tags = self._option(context, "tags") or ()
        alias = self._option(context, "using")
        varying = [var.resolve(context) for var in self.vary_on]
        key = KeyBuilder("fragment").key(str(name), digest(varying))
        backend = backend_for(alias)

        def render() -> str:
            return str(self.nodelist.render(context))

        # The fragment was produced by the template engine (already escaped when rendered).
        return mark_safe(str(backend.get_or_set(key, render, timeout, tags=tags)))  # noqa: S308

    def _option(self, context: Context, name: str) -> Any:
        expression = self.options.get(name)
        return None if expression is None else expression.resolve(context)


@register.tag("cached_fragment")
def cached_fragment(parser: Parser, token: Token) -> CachedFragmentNode:
    bits = token.split_contents()
    if len(bits) < 3:
        raise template.TemplateSyntaxError(
            f"{bits[0]!r} takes at least a fragment name and a timeout."
        )
    nodelist = parser.parse(("endcached_fragment",))
    parser.delete_first_token()
    vary_on: list[FilterExpression] = []
    options: dict[str, FilterExpression] = {}
    for bit in bits[3:]:
        keyword, sep, expression = bit.partition("=")
        if sep and keyword in _KEYWORDS:
            if keyword in options:
                raise template.TemplateSyntaxError(f"{bits[0]!r} got {keyword}= twice.")
            options[keyword] = parser.compile_filter(expression)
        elif sep and keyword.isidentifier():
            raise template.TemplateSyntaxError(
                f"{bits[0]!r} has no option {keyword!r}; use {' or '.join(_KEYWORDS)}."
            )
        else:
            vary_on.append(parser.compile_filter(bit))
    return CachedFragmentNode(
        nodelist, parser.compile_filter(bits[1]), parser.compile_filter(bits[2]), vary_on, options
    )
