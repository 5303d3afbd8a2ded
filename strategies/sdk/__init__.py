"""What every strategy process uses: OMS client, stream client, bars, scheduler, Strategy base, runner.

Strategies never talk to the broker; they send intents to the OMS and read data through it
(strategies.md §0.1). Import from here::

    from strategies.sdk import OmsClient, RiskPayload, Strategy, StrictModel
"""

from strategies.sdk.bars import Bar, BarBuilder
from strategies.sdk.client import OmsClient
from strategies.sdk.config import StrictModel, load_strategy_config
from strategies.sdk.errors import (
    IntentsClosed,
    MarketDataUnavailable,
    OmsAuthError,
    OmsBadRequest,
    OmsError,
    OmsNotFound,
    OmsRejected,
    OmsUnavailable,
    SdkError,
)
from strategies.sdk.keys import decision_key, random_key
from strategies.sdk.models import (
    Account,
    Allocation,
    Constraints,
    Fill,
    IntentReply,
    IntentStatus,
    IntentType,
    MarketClock,
    Order,
    OrderType,
    Position,
    RiskPayload,
    TimeHorizon,
    Urgency,
)
from strategies.sdk.scheduler import Scheduler
from strategies.sdk.strategy import Strategy
from strategies.sdk.stream import StreamClient

__all__ = [
    "Account",
    "Allocation",
    "Bar",
    "BarBuilder",
    "Constraints",
    "Fill",
    "IntentReply",
    "IntentStatus",
    "IntentType",
    "IntentsClosed",
    "MarketClock",
    "MarketDataUnavailable",
    "OmsAuthError",
    "OmsBadRequest",
    "OmsClient",
    "OmsError",
    "OmsNotFound",
    "OmsRejected",
    "OmsUnavailable",
    "Order",
    "OrderType",
    "Position",
    "RiskPayload",
    "Scheduler",
    "SdkError",
    "Strategy",
    "StreamClient",
    "StrictModel",
    "TimeHorizon",
    "Urgency",
    "decision_key",
    "load_strategy_config",
    "random_key",
]
