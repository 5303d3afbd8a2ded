"""The broker error taxonomy. Every adapter maps its failures onto exactly these types.

- OrderRejected: final; the broker refused the order (reason code + message). Never retry as is.
- RateLimited: retry after ``retry_after`` seconds.
- BrokerUnavailable: transient (network, 5xx before send); safe to retry.
- AuthError: credentials or token problem; needs operator action or re-auth.
- OutcomeUnknown: a submit (or cancel) whose result is unknown (timeout, disconnect, 5xx after
  send). The caller must look the order up by client order id before any retry.
"""

from __future__ import annotations


class BrokerError(Exception):
    code: str = "BROKER_ERROR"

    def __init__(self, message: str = "", *, code: str | None = None) -> None:
        super().__init__(message or self.__class__.__name__)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class OrderRejected(BrokerError):
    code = "REJECTED"


class RateLimited(BrokerError):
    code = "RATE_LIMITED"

    def __init__(self, message: str = "", *, retry_after: float = 1.0, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class BrokerUnavailable(BrokerError):
    code = "UNAVAILABLE"


class AuthError(BrokerError):
    code = "AUTH"


class OutcomeUnknown(BrokerError):
    code = "OUTCOME_UNKNOWN"

    def __init__(self, message: str = "", *, client_order_id: str, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.client_order_id = client_order_id


class OrderNotFound(BrokerError):
    code = "NOT_FOUND"


class SubscriptionCapacityExceeded(BrokerError):
    code = "SUBSCRIPTION_CAPACITY"
