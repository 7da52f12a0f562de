"""Errors the API turns into JSON responses; each carries its HTTP status."""

from __future__ import annotations


class ApiError(Exception):
    """An error with a status and a message safe to show to the caller."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequestError(ApiError):
    """The request is malformed (bad JSON, bad cursor, bad parameter combination)."""

    status = 400


class RunLimitError(ApiError):
    """A run cannot start because the limit of running runs is reached."""

    status = 400


class UnauthorizedError(ApiError):
    """The request carries no usable identity."""

    status = 401


class ForbiddenError(ApiError):
    """The identity is known but may not do this."""

    status = 403


class RunNotFoundError(ApiError):
    """No run has this id."""

    status = 404


class RunConflictError(ApiError):
    """The run is not in a state that allows the request (e.g. finishing a finished run)."""

    status = 409


class UnprocessableError(ApiError):
    """The request is well-formed but its content was refused by validation."""

    status = 422
