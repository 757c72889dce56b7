"""The management API's one pagination: newest first, by cursor."""

from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination

from core.errors import BadRequestError


class NewestFirstPagination(CursorPagination):
    ordering = "-created_at"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def paginate_queryset(self, queryset, request, view=None):
        try:
            return super().paginate_queryset(queryset, request, view)
        except NotFound:
            # DRF says 404 for a bad cursor; it is bad input.
            raise BadRequestError("The cursor is not one this API gave out.", code="bad_cursor") from None
