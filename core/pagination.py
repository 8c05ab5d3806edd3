"""The API's page-number pagination, without a COUNT query when the first page holds everything."""

from __future__ import annotations

from typing import Any

from django.core.paginator import Page
from django.core.paginator import Paginator as DjangoPaginator
from django.utils.functional import cached_property
from rest_framework.pagination import PageNumberPagination


class Paginator(DjangoPaginator):
    """Reads the first page with one row more than it shows: when that extra row is
    missing, the page is the whole list and its length is the count, so most lists
    (a user's projects, a run's history) cost one query instead of two."""

    # The length of the whole list, once reading the first page has seen all of it.
    first_page_total: int | None = None

    @cached_property
    def count(self) -> int:
        if self.first_page_total is not None:
            return self.first_page_total
        return super().count

    def page(self, number: Any) -> Page:
        try:
            first = int(number) == 1
        except (TypeError, ValueError):
            first = False
        if not first or self.orphans or not self.allow_empty_first_page:
            return super().page(number)
        rows = list(self.object_list[: self.per_page + 1])
        if len(rows) <= self.per_page:
            self.first_page_total = len(rows)
        return Page(rows[: self.per_page], 1, self)


class Pagination(PageNumberPagination):
    django_paginator_class = Paginator
