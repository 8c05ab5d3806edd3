"""The API's page-number pagination, without a COUNT query when the first page holds everything."""

from __future__ import annotations

from typing import Any

from django.core.paginator import Page
from django.core.paginator import Paginator as DjangoPaginator
from rest_framework.pagination import PageNumberPagination


class Paginator(DjangoPaginator):
    """Reads the first page with one row more than it shows: when that extra row is
    missing, the page is the whole list and its length is the count, so most lists
    (a user's projects, a run's history) cost one query instead of two."""

    def page(self, number: Any) -> Page:
        try:
            first = int(number) == 1
        except (TypeError, ValueError):
            first = False
        if not first or self.orphans or "count" in self.__dict__:
            return super().page(number)
        rows = list(self.object_list[: self.per_page + 1])
        if len(rows) <= self.per_page:
            self.__dict__["count"] = len(rows)  # fills the cached_property
        return self._get_page(rows[: self.per_page], 1, self)


class Pagination(PageNumberPagination):
    django_paginator_class = Paginator
